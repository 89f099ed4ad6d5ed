   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x2 goto pc+4
   7: (55) if r4 != 0x1 goto pc+3
   8: (55) if r5 != 0x3 goto pc+2
   9: (b4) w0 = 1
  10: (95) exit
  11: (55) if r2 != 0x1 goto pc+7
  12: (bc) w1 = w3
  13: (54) w1 &= 2
  14: (5d) if r1 != r3 goto pc+4
  15: (55) if r4 != 0x8 goto pc+3
  16: (55) if r5 != 0x0 goto pc+2
  17: (b4) w0 = 1
  18: (95) exit
  19: (55) if r2 != 0x2 goto pc+3
  20: (55) if r4 != 0x88 goto pc+2
  21: (b4) w0 = 1
  22: (95) exit
  23: (b4) w0 = 0
  24: (95) exit
