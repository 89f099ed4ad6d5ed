   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x1 goto pc+7
   7: (bc) w1 = w3
   8: (54) w1 &= 2
   9: (5d) if r1 != r3 goto pc+4
  10: (55) if r4 != 0x8 goto pc+3
  11: (55) if r5 != 0x0 goto pc+2
  12: (b7) r0 = 1
  13: (95) exit
  14: (55) if r2 != 0x2 goto pc+3
  15: (55) if r4 != 0x88 goto pc+2
  16: (b7) r0 = 1
  17: (95) exit
  18: (55) if r2 != 0x2 goto pc+4
  19: (55) if r4 != 0x1 goto pc+3
  20: (55) if r5 != 0x3 goto pc+2
  21: (b7) r0 = 1
  22: (95) exit
  23: (b7) r0 = 0
  24: (95) exit
