// A device filter as one would write it in C: root may open anything,
// everyone else only terminals (c 136:*, c 5:0). A helper
// (bpf_get_current_uid_gid) and a subprogram (is_tty, not inlined).
//
// uid_tty.bin is its code, built with Debian's clang 14:
//   clang -O2 -target bpf -mcpu=v3 -I/usr/include/x86_64-linux-gnu -c uid_tty.c -o uid_tty.o
//   llvm-objcopy -O binary --only-section=.text uid_tty.o uid_tty.bin
// Both functions sit in .text, so clang resolves the call itself and the
// bytes need no relocation.
//
//   devcg check --program uid_tty.bin tty.rules 'c 136:1 rw' --uid 1000

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __attribute__((noinline)) int is_tty(__u32 major, __u32 minor)
{
	if (major == 136)
		return 1;
	return major == 5 && minor == 0;
}

__attribute__((section(".text"))) int filter(struct bpf_cgroup_dev_ctx *ctx)
{
	__u64 ug = bpf_get_current_uid_gid();
	if ((__u32)ug == 0)
		return 1;
	if ((ctx->access_type & 0xffff) != BPF_DEVCG_DEV_CHAR)
		return 0;
	return is_tty(ctx->major, ctx->minor);
}
