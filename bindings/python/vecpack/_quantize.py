"""sentence-transformers' precision names for arrays of embeddings: vecpack.quantize_embeddings."""

import numpy as np

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def quantize_embeddings(embeddings, precision, ranges=None, calibration_embeddings=None):
    """Embeddings (rows x dim floats) in one of sentence-transformers' precisions, with the same
    bytes as its quantize_embeddings wherever that output is defined:

    - 'float32': the rows as float32;
    - 'uint8' / 'int8': each dimension cut into 255 equal steps between its minimum and maximum
      (`ranges`, a 2 x dim array of minima and maxima, or else those of `calibration_embeddings`,
      or else those of the embeddings themselves), as the step index (uint8) or the index minus
      128 (int8). Values outside the ranges are clipped (sentence-transformers leaves them
      undefined);
    - 'ubinary' / 'binary': one bit per dimension, set when the value is above 0, packed 8 to a
      byte, most significant bit first, as uint8, or minus 128 as int8. Each row is packed on
      its own (with a dimension that is not a multiple of 8, sentence-transformers packs across
      rows).

    A 1-D array is one row and gives a 1-D result.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    x = np.asarray(embeddings)
    if x.dtype in (np.int8, np.uint8):
        raise ValueError("quantize_embeddings takes float embeddings, not int8 or uint8 ones")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    single = x.ndim == 1
    rows = x[None, :] if single else x
    if rows.ndim != 2:
        raise ValueError(f"embeddings must be rows x dim, not {x.ndim}-D")
    if precision == "float32":
        out = rows.astype(np.float32)
    elif precision in ("uint8", "int8"):
        if ranges is None:
            source = rows if calibration_embeddings is None else np.asarray(calibration_embeddings)
            if len(source) == 0:
                raise ValueError("quantize_embeddings: no rows to take the ranges from")
            ranges = np.vstack((source.min(axis=0), source.max(axis=0)))
        ranges = np.asarray(ranges)
        if ranges.shape != (2, rows.shape[1]):
            raise ValueError(f"ranges must be 2 x {rows.shape[1]} (minima, maxima), not {' x '.join(map(str, ranges.shape))}")
        lowest, step = ranges[0], (ranges[1] - ranges[0]) / 255
        steps_up = (rows - lowest) / step  # the same float arithmetic as sentence-transformers
        if precision == "uint8":
            out = np.clip(steps_up, 0, 255).astype(np.uint8)
        else:
            out = np.clip(steps_up - 128, -128, 127).astype(np.int8)
    else:
        packed = np.packbits(rows > 0, axis=1)
        out = packed if precision == "ubinary" else (packed.astype(np.int16) - 128).astype(np.int8)
    return out[0] if single else out
