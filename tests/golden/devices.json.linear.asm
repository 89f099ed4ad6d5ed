   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (16) if w2 == 0x1 goto pc+3
   7: (16) if w2 == 0x2 goto pc+11
   8: (b7) r0 = 0
   9: (95) exit
  10: (56) if w4 != 0x8 goto pc+6
  11: (56) if w5 != 0x0 goto pc+3
  12: (46) if w3 & 0xfffffffd goto pc+2
  13: (b7) r0 = 1
  14: (95) exit
  15: (61) r4 = *(u32 *)(r1 +4)
  16: (61) r5 = *(u32 *)(r1 +8)
  17: (b7) r0 = 0
  18: (95) exit
  19: (56) if w4 != 0x1 goto pc+6
  20: (56) if w5 != 0x3 goto pc+3
  21: (46) if w3 & 0xfffffff8 goto pc+2
  22: (b7) r0 = 1
  23: (95) exit
  24: (61) r4 = *(u32 *)(r1 +4)
  25: (61) r5 = *(u32 *)(r1 +8)
  26: (56) if w4 != 0x88 goto pc+4
  27: (46) if w3 & 0xfffffff8 goto pc+2
  28: (b7) r0 = 1
  29: (95) exit
  30: (61) r4 = *(u32 *)(r1 +4)
  31: (b7) r0 = 0
  32: (95) exit
