"""Generated tokens to text, a piece at a time, with stop sequences.

Decoding token by token breaks characters that span tokens, so each step decodes a short window
(the last complete piece plus the new tokens) and releases text only once it is whole, as vLLM
does. Text that could be the start of a stop sequence is held back until it cannot be.
"""


class TextAssembler:
    def __init__(self, tokenizer, stop: tuple[str, ...]):
        self.tokenizer = tokenizer
        self.stop = stop
        self.hold_back = max((len(s) for s in stop), default=1) - 1
        self.ids: list[int] = []
        self.text = ""
        self.released = 0
        self.stopped = False
        self._prefix_offset = 0
        self._read_offset = 0

    def add(self, token_id: int) -> str:
        """Take one token; answer the text that is now safe to send (often empty)."""
        self.ids.append(token_id)
        decode = self.tokenizer.decode
        before = decode(self.ids[self._prefix_offset:self._read_offset], skip_special_tokens=True)
        after = decode(self.ids[self._prefix_offset:], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        search_from = max(0, len(self.text) - self.hold_back)
        self.text += after[len(before):]
        self._prefix_offset, self._read_offset = self._read_offset, len(self.ids)
        hits = [at for stop in self.stop if (at := self.text.find(stop, search_from)) != -1]
        if hits:
            self.text = self.text[:min(hits)]
            self.stopped = True
            return self._release(len(self.text))
        return self._release(len(self.text) - self.hold_back)

    def finish(self) -> str:
        """The text still held back, once generation has ended (a partial character included)."""
        if not self.stopped and self._read_offset < len(self.ids):
            decode = self.tokenizer.decode
            before = decode(self.ids[self._prefix_offset:self._read_offset], skip_special_tokens=True)
            self.text += decode(self.ids[self._prefix_offset:], skip_special_tokens=True)[len(before):]
            self._read_offset = len(self.ids)
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        if upto <= self.released:
            return ""
        piece = self.text[self.released:upto]
        self.released = upto
        return piece
