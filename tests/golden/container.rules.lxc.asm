   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x2 goto pc+4
   7: (55) if r4 != 0xa goto pc+3
   8: (55) if r5 != 0xc8 goto pc+2
   9: (b7) r0 = 1
  10: (95) exit
  11: (55) if r2 != 0x2 goto pc+3
  12: (55) if r4 != 0x88 goto pc+2
  13: (b7) r0 = 1
  14: (95) exit
  15: (55) if r2 != 0x2 goto pc+4
  16: (55) if r4 != 0x5 goto pc+3
  17: (55) if r5 != 0x2 goto pc+2
  18: (b7) r0 = 1
  19: (95) exit
  20: (55) if r2 != 0x2 goto pc+4
  21: (55) if r4 != 0x5 goto pc+3
  22: (55) if r5 != 0x0 goto pc+2
  23: (b7) r0 = 1
  24: (95) exit
  25: (55) if r2 != 0x2 goto pc+4
  26: (55) if r4 != 0x1 goto pc+3
  27: (55) if r5 != 0x9 goto pc+2
  28: (b7) r0 = 1
  29: (95) exit
  30: (55) if r2 != 0x2 goto pc+4
  31: (55) if r4 != 0x1 goto pc+3
  32: (55) if r5 != 0x8 goto pc+2
  33: (b7) r0 = 1
  34: (95) exit
  35: (55) if r2 != 0x2 goto pc+4
  36: (55) if r4 != 0x1 goto pc+3
  37: (55) if r5 != 0x7 goto pc+2
  38: (b7) r0 = 1
  39: (95) exit
  40: (55) if r2 != 0x2 goto pc+4
  41: (55) if r4 != 0x1 goto pc+3
  42: (55) if r5 != 0x5 goto pc+2
  43: (b7) r0 = 1
  44: (95) exit
  45: (55) if r2 != 0x2 goto pc+4
  46: (55) if r4 != 0x1 goto pc+3
  47: (55) if r5 != 0x3 goto pc+2
  48: (b7) r0 = 1
  49: (95) exit
  50: (bc) w1 = w3
  51: (54) w1 &= 1
  52: (5d) if r1 != r3 goto pc+3
  53: (55) if r2 != 0x1 goto pc+2
  54: (b7) r0 = 1
  55: (95) exit
  56: (bc) w1 = w3
  57: (54) w1 &= 1
  58: (5d) if r1 != r3 goto pc+3
  59: (55) if r2 != 0x2 goto pc+2
  60: (b7) r0 = 1
  61: (95) exit
  62: (b7) r0 = 0
  63: (95) exit
