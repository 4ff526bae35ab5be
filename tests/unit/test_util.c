/* test_util.c — error codes and their messages, string buffers and JSON escaping (util.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "ps_util.h"

Test(util, every_code_has_its_own_message)
{
    /* Each code must print the message written next to it in PS_ERRORS. */
#define PS_X_CHECK(name, msg) cr_expect_str_eq(ps_strerror(PS_E##name), msg, "PS_E" #name);
    PS_ERRORS(PS_X_CHECK)
#undef PS_X_CHECK
    cr_expect_str_eq(ps_strerror(0), "success");
    cr_expect_str_eq(ps_strerror(-1000), "unknown error");
    cr_expect_eq(PS_ENOMEM, -1);
}

Test(util, errno_mapping)
{
    cr_expect_eq(ps_err_from_errno(ESRCH), PS_ENOPROC);
    cr_expect_eq(ps_err_from_errno(EPERM), PS_EPERM);
    cr_expect_eq(ps_err_from_errno(EFAULT), PS_EFAULT);
    cr_expect_str_eq(ps_strerror(ps_err_from_errno(EACCES)), "permission denied");
}

Test(util, json_strings)
{
    struct ps_strbuf sb;
    ps_sb_init(&sb);
    ps_sb_add_json_str(&sb, "a\"b\\c\n\x01\xc3\xbc\xff");
    cr_expect_str_eq(sb.buf, "\"a\\\"b\\\\c\\n\\u0001\xc3\xbc\\ufffd\"");
    ps_sb_release(&sb);
}
