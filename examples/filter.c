// A hand-written cgroup device filter, as a runtime author might write one:
// the devices of examples/filter.rules, with /dev/net/tun (and whatever else
// the loader puts there) in a map. It is built by clang in the test suite
// and judged by devcg:
//
//   clang -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu \
//         -c examples/filter.c -o filter.o
//   devcg verify --exhaustive --program filter.o \
//         --map extra=examples/filter-map.json examples/filter.rules
//
// It has the bug devcg is meant to find: mknod is granted by comparing the
// access with BPF_DEVCG_ACC_MKNOD, so a request with no access bit at all,
// access(F_OK), falls through to "deny" on every device the rules grant
// only mknod on, where the kernel's v1 rules would allow it.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct device {
	__u32 major;
	__u32 minor;
};

// Extra character devices: (major, minor) -> the access bits granted.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct device);
	__type(value, __u32);
} extra SEC(".maps");

SEC("cgroup/dev")
int filter(struct bpf_cgroup_dev_ctx *ctx)
{
	__u32 type = ctx->access_type & 0xffff;
	__u32 access = ctx->access_type >> 16;
	struct device dev = { ctx->major, ctx->minor };
	__u32 *granted;

	if (access == BPF_DEVCG_ACC_MKNOD)
		return 1;
	if (type != BPF_DEVCG_DEV_CHAR)
		return 0;
	if (dev.major == 1 && (dev.minor == 3 || dev.minor == 5))
		return 1; /* /dev/null, /dev/zero */
	if (dev.major == 5 && dev.minor == 2)
		return 1; /* /dev/ptmx */
	if (dev.major == 136)
		return 1; /* the ptys, /dev/pts/N */
	granted = bpf_map_lookup_elem(&extra, &dev);
	if (granted && (*granted & access) == access)
		return 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
