   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x1 goto pc+5
   7: (bc) w1 = w3
   8: (54) w1 &= 1
   9: (5d) if r1 != r3 goto pc+2
  10: (b4) w0 = 1
  11: (95) exit
  12: (55) if r2 != 0x2 goto pc+5
  13: (bc) w1 = w3
  14: (54) w1 &= 1
  15: (5d) if r1 != r3 goto pc+2
  16: (b4) w0 = 1
  17: (95) exit
  18: (55) if r2 != 0x2 goto pc+4
  19: (55) if r4 != 0x1 goto pc+3
  20: (55) if r5 != 0x3 goto pc+2
  21: (b4) w0 = 1
  22: (95) exit
  23: (55) if r2 != 0x2 goto pc+4
  24: (55) if r4 != 0x1 goto pc+3
  25: (55) if r5 != 0x5 goto pc+2
  26: (b4) w0 = 1
  27: (95) exit
  28: (55) if r2 != 0x2 goto pc+4
  29: (55) if r4 != 0x1 goto pc+3
  30: (55) if r5 != 0x7 goto pc+2
  31: (b4) w0 = 1
  32: (95) exit
  33: (55) if r2 != 0x2 goto pc+4
  34: (55) if r4 != 0x1 goto pc+3
  35: (55) if r5 != 0x8 goto pc+2
  36: (b4) w0 = 1
  37: (95) exit
  38: (55) if r2 != 0x2 goto pc+4
  39: (55) if r4 != 0x1 goto pc+3
  40: (55) if r5 != 0x9 goto pc+2
  41: (b4) w0 = 1
  42: (95) exit
  43: (55) if r2 != 0x2 goto pc+4
  44: (55) if r4 != 0x5 goto pc+3
  45: (55) if r5 != 0x0 goto pc+2
  46: (b4) w0 = 1
  47: (95) exit
  48: (55) if r2 != 0x2 goto pc+4
  49: (55) if r4 != 0x5 goto pc+3
  50: (55) if r5 != 0x2 goto pc+2
  51: (b4) w0 = 1
  52: (95) exit
  53: (55) if r2 != 0x2 goto pc+4
  54: (55) if r4 != 0xa goto pc+3
  55: (55) if r5 != 0xc8 goto pc+2
  56: (b4) w0 = 1
  57: (95) exit
  58: (55) if r2 != 0x2 goto pc+3
  59: (55) if r4 != 0x88 goto pc+2
  60: (b4) w0 = 1
  61: (95) exit
  62: (b4) w0 = 0
  63: (95) exit
