   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x2 goto pc+3
   7: (55) if r4 != 0xa goto pc+2
   8: (55) if r5 != 0xc8 goto pc+1
   9: (05) goto pc+43
  10: (55) if r2 != 0x2 goto pc+2
  11: (55) if r4 != 0x88 goto pc+1
  12: (05) goto pc+40
  13: (55) if r2 != 0x2 goto pc+3
  14: (55) if r4 != 0x5 goto pc+2
  15: (55) if r5 != 0x2 goto pc+1
  16: (05) goto pc+36
  17: (55) if r2 != 0x2 goto pc+3
  18: (55) if r4 != 0x5 goto pc+2
  19: (55) if r5 != 0x0 goto pc+1
  20: (05) goto pc+32
  21: (55) if r2 != 0x2 goto pc+3
  22: (55) if r4 != 0x1 goto pc+2
  23: (55) if r5 != 0x9 goto pc+1
  24: (05) goto pc+28
  25: (55) if r2 != 0x2 goto pc+3
  26: (55) if r4 != 0x1 goto pc+2
  27: (55) if r5 != 0x8 goto pc+1
  28: (05) goto pc+24
  29: (55) if r2 != 0x2 goto pc+3
  30: (55) if r4 != 0x1 goto pc+2
  31: (55) if r5 != 0x7 goto pc+1
  32: (05) goto pc+20
  33: (55) if r2 != 0x2 goto pc+3
  34: (55) if r4 != 0x1 goto pc+2
  35: (55) if r5 != 0x5 goto pc+1
  36: (05) goto pc+16
  37: (55) if r2 != 0x2 goto pc+3
  38: (55) if r4 != 0x1 goto pc+2
  39: (55) if r5 != 0x3 goto pc+1
  40: (05) goto pc+12
  41: (bc) w1 = w3
  42: (54) w1 &= 1
  43: (5d) if r1 != r3 goto pc+2
  44: (55) if r2 != 0x1 goto pc+1
  45: (05) goto pc+7
  46: (bc) w1 = w3
  47: (54) w1 &= 1
  48: (5d) if r1 != r3 goto pc+2
  49: (55) if r2 != 0x2 goto pc+1
  50: (05) goto pc+2
  51: (b7) r0 = 0
  52: (05) goto pc+1
  53: (b7) r0 = 1
  54: (95) exit
