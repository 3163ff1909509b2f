"""Files: their records and blobs (store.py), multipart uploads as they stream in (multipart.py), and
the background validation of fine-tuning uploads (validation.py)."""
