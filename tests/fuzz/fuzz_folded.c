/* fuzz_folded.c — libFuzzer target for the folded reader (out/folded.c): any bytes are read as
 * a folded file, and whatever profile results is written again with every writer, so the
 * reader, the escaping writer and the table all see hostile names and counts.
 */
#include <stdint.h>
#include <stdio.h>

#include "ps_output.h"
#include "ps_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    if (!size)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    struct ps_profile p;
    ps_profile_init(&p);
    ps_folded_read(f, "fuzz", &p);
    fclose(f);
    struct ps_out_opts by_line = {0}, by_function = {.by_function = 1};
    ps_folded_write(devnull, &p, &by_line);
    ps_table_write(devnull, &p, &by_line);
    ps_table_write(devnull, &p, &by_function);
    ps_profile_release(&p);
    return 0;
}
