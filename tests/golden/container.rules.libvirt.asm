   0: (bf) r6 = r1
   1: (61) r1 = *(u32 *)(r6 +8)
   2: (61) r2 = *(u32 *)(r6 +4)
   3: (67) r2 <<= 32
   4: (4f) r2 |= r1
   5: (7b) *(u64 *)(r10 -8) = r2
   6: (bf) r2 = r10
   7: (07) r2 += -8
   8: (18) r1 = map[idx:0]
  10: (85) call bpf_map_lookup_elem#1
  11: (bf) r1 = r0
  12: (15) if r1 == 0x0 goto pc+5
  13: (b7) r0 = 1
  14: (61) r2 = *(u32 *)(r6 +0)
  15: (61) r1 = *(u32 *)(r1 +0)
  16: (5f) r1 &= r2
  17: (1d) if r1 == r2 goto pc+50
  18: (61) r1 = *(u32 *)(r6 +4)
  19: (67) r1 <<= 32
  20: (18) r2 = 0xffffffff
  22: (4f) r1 |= r2
  23: (7b) *(u64 *)(r10 -8) = r1
  24: (bf) r2 = r10
  25: (07) r2 += -8
  26: (18) r1 = map[idx:0]
  28: (85) call bpf_map_lookup_elem#1
  29: (bf) r1 = r0
  30: (15) if r1 == 0x0 goto pc+5
  31: (b7) r0 = 1
  32: (61) r2 = *(u32 *)(r6 +0)
  33: (61) r1 = *(u32 *)(r1 +0)
  34: (5f) r1 &= r2
  35: (1d) if r1 == r2 goto pc+32
  36: (61) r1 = *(u32 *)(r6 +8)
  37: (18) r2 = 0xffffffff00000000
  39: (4f) r1 |= r2
  40: (7b) *(u64 *)(r10 -8) = r1
  41: (bf) r2 = r10
  42: (07) r2 += -8
  43: (18) r1 = map[idx:0]
  45: (85) call bpf_map_lookup_elem#1
  46: (bf) r1 = r0
  47: (15) if r1 == 0x0 goto pc+5
  48: (b7) r0 = 1
  49: (61) r2 = *(u32 *)(r6 +0)
  50: (61) r1 = *(u32 *)(r1 +0)
  51: (5f) r1 &= r2
  52: (1d) if r1 == r2 goto pc+15
  53: (b7) r1 = -1
  54: (7b) *(u64 *)(r10 -8) = r1
  55: (bf) r2 = r10
  56: (07) r2 += -8
  57: (18) r1 = map[idx:0]
  59: (85) call bpf_map_lookup_elem#1
  60: (bf) r1 = r0
  61: (15) if r1 == 0x0 goto pc+5
  62: (b7) r0 = 1
  63: (61) r2 = *(u32 *)(r6 +0)
  64: (61) r1 = *(u32 *)(r1 +0)
  65: (5f) r1 &= r2
  66: (1d) if r1 == r2 goto pc+1
  67: (b7) r0 = 0
  68: (95) exit
; map idx:0 libvirt_devices hash key_size 8 value_size 4 max_entries 64
; map idx:0 entry 0300000001000000 02000700
; map idx:0 entry 0500000001000000 02000700
; map idx:0 entry 0700000001000000 02000700
; map idx:0 entry 0800000001000000 02000700
; map idx:0 entry 0900000001000000 02000700
; map idx:0 entry 0000000005000000 02000700
; map idx:0 entry 0200000005000000 02000700
; map idx:0 entry c80000000a000000 02000700
; map idx:0 entry ffffffff88000000 02000700
; map idx:0 entry ffffffffffffffff 01000100
