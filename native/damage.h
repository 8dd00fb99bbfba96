/* Tile change detection between two frames.
 *
 * Plain C declarations only: native/build_damage.py feeds this file to cffi's cdef()
 * after dropping the preprocessor lines, so keep everything else cdef-parsable.
 */
#ifndef HDX_DAMAGE_H
#define HDX_DAMAGE_H
#include <stdint.h>

/* Compare two frames tile by tile.
 *
 * prev, cur:        first byte of row 0 of each frame.
 * width, height:    frame size in pixels (both frames have the same size).
 * stride_prev/cur:  bytes from the start of one row to the next (>= width * bytes_per_pixel).
 * bytes_per_pixel:  bytes of one pixel; the bytes of a row are contiguous.
 * tile:             tile edge in pixels; edge tiles may be partial.
 * out:              ceil(height/tile) * ceil(width/tile) bytes, row-major by tile row;
 *                   set to 1 where any byte of the tile differs, 0 elsewhere.
 *
 * Returns the number of changed tiles, or -1 on bad arguments (out is then untouched).
 * A frame with zero width or height has no tiles and returns 0.
 */
int hdx_tile_changes(const uint8_t *prev, const uint8_t *cur, int width, int height,
                     int stride_prev, int stride_cur, int bytes_per_pixel, int tile,
                     uint8_t *out);

#endif
