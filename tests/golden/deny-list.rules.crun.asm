   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x2 goto pc+6
   7: (bc) w1 = w3
   8: (54) w1 &= 1
   9: (5d) if r1 != r3 goto pc+3
  10: (55) if r4 != 0xa goto pc+2
  11: (b7) r0 = 0
  12: (95) exit
  13: (55) if r2 != 0x1 goto pc+3
  14: (55) if r4 != 0x8 goto pc+2
  15: (b7) r0 = 0
  16: (95) exit
  17: (55) if r2 != 0x2 goto pc+7
  18: (bc) w1 = w3
  19: (54) w1 &= 4
  20: (5d) if r1 != r3 goto pc+4
  21: (55) if r4 != 0x1 goto pc+3
  22: (55) if r5 != 0x3 goto pc+2
  23: (b7) r0 = 0
  24: (95) exit
  25: (b7) r0 = 1
  26: (95) exit
