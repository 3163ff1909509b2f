"""GXFT: a self-hosted fine-tuning server that speaks the OpenAI and Nebius fine-tuning APIs."""
