"""The torch side that training (worker/), serving (server/serving/) and the CLI share: loading a causal
language model and its tokenizer the same way everywhere. It imports none of server, worker or storage,
and the server imports it only from the engine thread, when it first serves a model."""
