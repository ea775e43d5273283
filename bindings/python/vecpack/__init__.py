"""vecpack: store, compress and search embedding tables.

    import vecpack
    words = vecpack.read("glove.6B.100d.txt")          # word2vec, GloVe, HDF5, .vecpack
    small = words.compress("int8")                     # a codec spec: f32, f16, bf16, int8, ...
    small.save("glove.int8.vecpack")
    t = vecpack.open("glove.int8.vecpack")             # memory-mapped, O(1)
    t["king"], t.most_similar("king", topn=5)
    ids, scores = t.search(queries, k=10)              # exact top-k on the stored codes

Tables: open(), read(), write(), compress(), Table; from_gensim(kv) and Table.to_gensim(). Codecs: Codec, codecs(). Formats:
formats(). Errors: Error and its subclasses FormatError, ParseError, SpecError (ValueErrors),
IoError (an OSError) and NotFoundError (a KeyError).
"""

from collections.abc import Sequence as _Sequence

from ._errors import Error, FormatError, IoError, LockedError, MemoryLimitError, NotFoundError, ParseError, SpecError
from ._vecpack import (Codec, KeyList, Table, codecs, compress, formats, kernel_isa, open, read, version, write,
                       write_manifest)
from ._gensim import from_gensim
from ._quantize import quantize_embeddings
from ._table import extend as _extend

_extend(Table)
_Sequence.register(KeyList)
# Tracebacks and help() name the public module, not where each class is defined.
for _public in (Codec, KeyList, Table, Error, FormatError, IoError, LockedError, MemoryLimitError, NotFoundError, ParseError, SpecError):
    _public.__module__ = __name__
del _public

__version__ = version()

# `open` is left out so that `from vecpack import *` does not hide the built-in open().
__all__ = [
    "Codec", "KeyList", "Table", "codecs", "compress", "formats", "from_gensim", "kernel_isa", "quantize_embeddings", "read",
    "version", "write", "write_manifest",
    "Error", "FormatError", "IoError", "LockedError", "MemoryLimitError", "NotFoundError", "ParseError", "SpecError",
]

# Trainable tables whose rows share parameters (hash, quotient-remainder, mixed-dimension), for
# training loops: forward, backward, step; parameters as writable numpy views.
from ._vecpack import HashEmbedding, MixedDimEmbedding, QREmbedding, SharedEmbedding  # noqa: E402

for _public in (HashEmbedding, MixedDimEmbedding, QREmbedding, SharedEmbedding):
    _public.__module__ = __name__
del _public
__all__ += ["HashEmbedding", "MixedDimEmbedding", "QREmbedding", "SharedEmbedding"]
