"""What the server and its workers share, and nothing else: the internal API's wire types, the training
settings, the JSONL format rules, ids, the closed sets of values (job status, file purpose, method)
and the job queue's task.

It imports only the standard library, msgspec and huey, so that a worker on another machine needs
none of the server's code and the server none of the training code (tests/test_import_rules.py).
"""
