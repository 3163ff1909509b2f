"""A response's output items as the model's text arrives, and the typed events that stream them.

The text goes through the tool-call parser, where the request has tools: content opens a message item (an
`output_text` part that grows by deltas), each whole call becomes a function_call item. A message item is opened
only by text that is not all whitespace, so the newline a model writes before its call is no message of its own;
an answer with nothing at all is one empty message, as OpenAI answers it. A whole answer is built the same way,
fed in one piece, and its events dropped.
"""

from contract.ids import new_id
from server.responses_api.protocol import (
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    ContentPartEvent,
    FunctionCallItem,
    MessageItem,
    OutputItem,
    OutputItemEvent,
    OutputText,
    StreamEvent,
    TextDeltaEvent,
    TextDoneEvent,
    TokenLogprob,
    TopLogprob,
)
from server.serving import generation_request
from server.serving.tool_calls import ToolCallParser


def output_logprobs(logprobs: list[generation_request.TokenLogprob]) -> list[TokenLogprob]:
    return [TokenLogprob(token=entry.token, logprob=entry.logprob, bytes=list(entry.token.encode()),
                         top_logprobs=[TopLogprob(token=token, logprob=logprob, bytes=list(token.encode()))
                                       for token, logprob in entry.top])
            for entry in logprobs]


class ResponseOutput:
    def __init__(self, parser: ToolCallParser | None):
        self.parser = parser
        self.output: list[OutputItem] = []
        self._message: MessageItem | None = None  # the message item now open, its one part growing
        self._held = ""  # whitespace that opens no message unless more text follows
        self._held_logprobs: list[TokenLogprob] = []

    @property
    def has_calls(self) -> bool:
        return any(isinstance(item, FunctionCallItem) for item in self.output)

    def take(self, text: str, logprobs: list[generation_request.TokenLogprob]) -> list[StreamEvent]:
        """More of the answer: the events it makes."""
        content, calls = self.parser.feed(text) if self.parser else (text, [])
        self._held_logprobs += output_logprobs(logprobs)
        events = self._content(content)
        for call in calls:
            events += self._close_message("completed")
            self._held, self._held_logprobs = "", []  # what led up to the call, markup included
            item = FunctionCallItem(id=new_id("fc_"), call_id=call.id, name=call.name, arguments=call.arguments)
            index = len(self.output)
            self.output.append(item)
            events += [
                OutputItemEvent(type="response.output_item.added", output_index=index, item=FunctionCallItem(
                    id=item.id, call_id=item.call_id, name=item.name, arguments="", status="in_progress")),
                ArgumentsDeltaEvent(item_id=item.id, output_index=index, delta=item.arguments),
                ArgumentsDoneEvent(item_id=item.id, output_index=index, name=item.name, arguments=item.arguments),
                OutputItemEvent(type="response.output_item.done", output_index=index, item=item),
            ]
        return events

    def finish(self, incomplete: bool) -> list[StreamEvent]:
        """The answer has ended (`incomplete`: cut by max_output_tokens): the events that close it."""
        events = self._content(self.parser.finish() if self.parser else "")
        if not self.output and self._message is None:
            events += self._open_message()
            events += self._delta(self._held) if self._held else []
        return events + self._close_message("incomplete" if incomplete else "completed")

    def _content(self, text: str) -> list[StreamEvent]:
        if not text:
            return []
        if self._message is None:
            self._held += text
            if not self._held.strip():
                return []
            text, self._held = self._held, ""
            return self._open_message() + self._delta(text)
        return self._delta(text)

    def _open_message(self) -> list[StreamEvent]:
        self._message = MessageItem(id=new_id("msg_"), role="assistant", content=[OutputText(text="")],
                                    status="in_progress")
        index = len(self.output)
        self.output.append(self._message)
        return [
            OutputItemEvent(type="response.output_item.added", output_index=index,
                            item=MessageItem(id=self._message.id, role="assistant", content=[], status="in_progress")),
            ContentPartEvent(type="response.content_part.added", item_id=self._message.id, output_index=index,
                             content_index=0, part=OutputText(text="")),
        ]

    def _delta(self, text: str) -> list[StreamEvent]:
        assert self._message is not None
        part = self._message.content[0]
        assert isinstance(part, OutputText)
        part.text += text
        logprobs, self._held_logprobs = self._held_logprobs, []
        part.logprobs += logprobs
        return [TextDeltaEvent(item_id=self._message.id, output_index=self.output.index(self._message),
                               content_index=0, delta=text, logprobs=logprobs)]

    def _close_message(self, status: str) -> list[StreamEvent]:
        message, self._message = self._message, None
        if message is None:
            return []
        part = message.content[0]
        assert isinstance(part, OutputText)
        message.status = "incomplete" if status == "incomplete" else "completed"
        index = self.output.index(message)
        return [
            TextDoneEvent(item_id=message.id, output_index=index, content_index=0, text=part.text,
                          logprobs=part.logprobs),
            ContentPartEvent(type="response.content_part.done", item_id=message.id, output_index=index,
                             content_index=0, part=part),
            OutputItemEvent(type="response.output_item.done", output_index=index, item=message),
        ]
