// zlib (Debian's zlib1g-dev) for Swift: the header, plus an inline wrapper for deflateInit2, which zlib defines as a
// macro (it passes the library version and the stream's size for a consistency check).
#ifndef C_ZLIB_SHIM_H
#define C_ZLIB_SHIM_H

#include <zlib.h>

static inline int huddle_deflateInit2(z_streamp strm, int level, int method, int windowBits, int memLevel, int strategy) {
    return deflateInit2(strm, level, method, windowBits, memLevel, strategy);
}
static inline int huddle_inflateInit2(z_streamp strm, int windowBits) { return inflateInit2(strm, windowBits); }

#endif
