/* Tile change detection: see damage.h for the contract; hdx/damage/_numpy.py is the spec. */
#include "damage.h"

#include <stddef.h>
#include <string.h>

int hdx_tile_changes(const uint8_t *prev, const uint8_t *cur, int width, int height,
                     int stride_prev, int stride_cur, int bytes_per_pixel, int tile,
                     uint8_t *out)
{
    if (width < 0 || height < 0 || bytes_per_pixel <= 0 || tile <= 0)
        return -1;
    if (width == 0 || height == 0)
        return 0;
    if (prev == NULL || cur == NULL || out == NULL)
        return -1;

    const long long row_bytes_ll = (long long)width * bytes_per_pixel;
    const long long tile_bytes_ll = (long long)tile * bytes_per_pixel;
    if (row_bytes_ll > stride_prev || row_bytes_ll > stride_cur)
        return -1;
    const int tiles_x = (int)((width + (long long)tile - 1) / tile);
    const int tiles_y = (int)((height + (long long)tile - 1) / tile);
    if ((long long)tiles_x * tiles_y > 0x7fffffffLL)
        return -1;

    /* Every tile but the last one of a tile row has tile_bytes bytes per pixel row. */
    const size_t row_bytes = (size_t)row_bytes_ll;
    const size_t tile_bytes = tile_bytes_ll < row_bytes_ll ? (size_t)tile_bytes_ll : row_bytes;
    const size_t last_bytes = row_bytes - (size_t)(tiles_x - 1) * tile_bytes;

    memset(out, 0, (size_t)tiles_x * (size_t)tiles_y);

    int changed = 0;
    for (int ty = 0; ty < tiles_y; ty++) {
        uint8_t *orow = out + (size_t)ty * (size_t)tiles_x;
        const int y0 = ty * tile;
        const int y1 = height - y0 < tile ? height : y0 + tile;
        int clean = tiles_x; /* tiles of this tile row not yet known dirty */

        for (int y = y0; y < y1 && clean > 0; y++) {
            const uint8_t *p = prev + (ptrdiff_t)y * stride_prev;
            const uint8_t *c = cur + (ptrdiff_t)y * stride_cur;
            for (int tx = 0; tx < tiles_x; tx++) {
                if (orow[tx])
                    continue;
                const size_t off = (size_t)tx * tile_bytes;
                const size_t len = tx == tiles_x - 1 ? last_bytes : tile_bytes;
                if (memcmp(p + off, c + off, len) != 0) {
                    orow[tx] = 1;
                    clean--;
                    changed++;
                }
            }
        }
    }
    return changed;
}
