"""Clients GXFT did not write, used as their own users use them: LangChain's ChatOpenAI (chat, streaming, tools,
structured output, logprobs, and its Responses API mode) and OpenAI's Node SDK (compat_tests/node), against
fine-tuned models of the shared server."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from compat_tests.conftest import unavailable
from compat_tests.test_fine_tuning import TINY
from compat_tests.test_serving import QA
from compat_tests.test_training_methods import TOOLS

QUESTION, ANSWER = next(iter(QA.items()))
NODE_FOLDER = Path(__file__).with_name("node")


def _chat_openai(server, model: str, **options) -> ChatOpenAI:
    return ChatOpenAI(**{"model": model, "base_url": server.base_url + "/v1", "api_key": "sk-langchain",
                         "temperature": 0, "max_retries": 0, **options})


class City(BaseModel):
    name: Annotated[str, Field(max_length=12)]


def test_langchain_chat_openai_calls_fine_tuned_models(server, qa_model, tool_model):
    chat = _chat_openai(server, qa_model)
    answer = chat.invoke(QUESTION)
    assert answer.content == ANSWER and answer.usage_metadata["output_tokens"] > 0
    assert "".join(chunk.content for chunk in chat.stream(QUESTION)) == ANSWER
    with_logprobs = chat.bind(logprobs=True).invoke(QUESTION)
    assert "".join(entry["token"] for entry in with_logprobs.response_metadata["logprobs"]["content"]) == ANSWER

    # The tools as the model was trained with them: the tiny model knows only the prompt it learned, and a @tool
    # function's schema would render with its keys in another order.
    called = _chat_openai(server, tool_model).bind_tools(TOOLS).invoke("What is the weather in Lima?")
    assert [(call["name"], call["args"]) for call in called.tool_calls] == [("get_weather", {"city": "Lima"})]

    structured = _chat_openai(server, TINY, temperature=1, max_tokens=200).with_structured_output(
        City, method="json_schema", strict=True)
    assert isinstance(structured.invoke("A city"), City)


def test_langchain_responses_api_mode(server, qa_model):
    chat = _chat_openai(server, qa_model, use_responses_api=True)
    answer = chat.invoke(QUESTION)
    assert answer.text == ANSWER and answer.response_metadata["id"].startswith("resp_")
    assert "".join(chunk.text for chunk in chat.stream(QUESTION)) == ANSWER


def test_the_node_sdk_runs_chat_tools_stored_completions_and_responses(server, qa_model, tool_model):
    if shutil.which("node") is None or not (NODE_FOLDER / "node_modules" / "openai").is_dir():
        unavailable("node, and the openai package in compat_tests/node (scripts/install-test-packages installs both)")
    run = subprocess.run(["node", "node_sdk_check.mjs"], cwd=NODE_FOLDER, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "GXFT_BASE_URL": server.base_url + "/v1", "QA_MODEL": qa_model,
                              "QUESTION": QUESTION, "TOOL_MODEL": tool_model, "TINY": TINY})
    assert run.returncode == 0, run.stderr[-4000:]
    seen = json.loads(run.stdout)
    assert seen["chat"] == seen["chatStreamed"] == seen["chatLogprobTokens"] == ANSWER
    assert seen["toolCall"]["name"] == "get_weather" and json.loads(seen["toolCall"]["arguments"]) == {"city": "Paris"}
    assert seen["toolFinish"] == "tool_calls"
    assert set(seen["structured"]) == {"name"} and len(seen["structured"]["name"]) <= 12
    assert seen["storedIds"] == [seen["storedChatId"]]
    assert seen["storedMessages"] == [["user", QUESTION]]
    assert seen["updatedMetadata"] == {"client": "node", "seen": "yes"} and seen["deleted"] is True
    assert seen["response"] == seen["responseStreamed"] == seen["responseHelper"] == ANSWER
    assert seen["chainedItems"] == ["user", "assistant", "user"]
    assert seen["responseEvents"] == ["response.created", "response.completed"]
    assert seen["webSearch"] == [400, "tools[0].type"]
