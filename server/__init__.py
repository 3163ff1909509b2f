"""The GXFT API server: a Starlette app run by uvicorn."""
