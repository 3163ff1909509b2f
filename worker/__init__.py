"""Training workers: huey tasks and the training code. Workers reach the server only over HTTP."""
