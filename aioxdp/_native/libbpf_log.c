/* libbpf prints through a callback that receives a va_list, which cffi
 * cannot forward to Python; format here and hand Python whole lines. */
#include <stdarg.h>
#include <stdio.h>
#include <bpf/libbpf.h>

#include "aioxdp_native.h"

static int print_to_python(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[2048];
	int n = vsnprintf(line, sizeof(line), fmt, ap);

	if (n < 0)
		return n;
	aioxdp_on_libbpf_log((int)level, line);
	return n;
}

void aioxdp_capture_libbpf_log(void)
{
	libbpf_set_print(print_to_python);
}
