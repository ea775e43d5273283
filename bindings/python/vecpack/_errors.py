"""The exceptions vecpack raises; every C++ error arrives as one of these, message intact."""


class Error(Exception):
    """Base of every vecpack error."""


class FormatError(Error, ValueError):
    """A .vecpack file (or pickled codec parameters) is damaged, truncated or too new.

    Attributes: section (the four-letter section type, or '') and offset (in the file).
    """


class ParseError(Error, ValueError):
    """A foreign file (word2vec, GloVe, ...) does not parse.

    Attributes: file, line and column (1-based; 0 when unknown).
    """


class SpecError(Error, ValueError):
    """A codec spec string or one of its arguments is invalid."""


class IoError(Error, OSError):
    """The operating system refused an operation.

    errno, strerror and filename are set as on any OSError; str() is vecpack's message.
    """

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class NotFoundError(Error, KeyError):
    """A key or row asked for is not in the table."""

    def __str__(self):
        # KeyError would quote the message as a repr.
        return str(self.args[0]) if self.args else ""


class LockedError(Error):
    """Another writer is changing the table (add, delete, compact); the message names its pid."""


class MemoryLimitError(Error, MemoryError):
    """An input declares (or grows to) a table larger than the reader's memory limit (max_memory)."""
