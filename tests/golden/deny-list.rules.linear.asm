   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (16) if w2 == 0x1 goto pc+3
   7: (16) if w2 == 0x2 goto pc+13
   8: (b7) r0 = 1
   9: (95) exit
  10: (16) if w4 == 0x8 goto pc+1
  11: (56) if w4 != 0xffffffff goto pc+4
  12: (46) if w3 & 0x7 goto pc+4
  13: (61) r4 = *(u32 *)(r1 +4)
  14: (61) r3 = *(u32 *)(r1 +0)
  15: (74) w3 >>= 16
  16: (05) goto pc+2
  17: (b7) r0 = 0
  18: (95) exit
  19: (b7) r0 = 1
  20: (95) exit
  21: (16) if w4 == 0x1 goto pc+1
  22: (56) if w4 != 0xffffffff goto pc+7
  23: (16) if w5 == 0x3 goto pc+1
  24: (56) if w5 != 0xffffffff goto pc+1
  25: (46) if w3 & 0x4 goto pc+11
  26: (61) r4 = *(u32 *)(r1 +4)
  27: (61) r5 = *(u32 *)(r1 +8)
  28: (61) r3 = *(u32 *)(r1 +0)
  29: (74) w3 >>= 16
  30: (16) if w4 == 0xa goto pc+1
  31: (56) if w4 != 0xffffffff goto pc+4
  32: (46) if w3 & 0x1 goto pc+4
  33: (61) r4 = *(u32 *)(r1 +4)
  34: (61) r3 = *(u32 *)(r1 +0)
  35: (74) w3 >>= 16
  36: (05) goto pc+2
  37: (b7) r0 = 0
  38: (95) exit
  39: (b7) r0 = 1
  40: (95) exit
