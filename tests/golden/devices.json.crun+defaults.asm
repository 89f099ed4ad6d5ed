   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x2 goto pc+7
   7: (bc) w1 = w3
   8: (54) w1 &= 0
   9: (5d) if r1 != r3 goto pc+4
  10: (55) if r4 != 0x0 goto pc+3
  11: (55) if r5 != 0x0 goto pc+2
  12: (b7) r0 = 1
  13: (95) exit
  14: (55) if r2 != 0x2 goto pc+4
  15: (55) if r4 != 0xa goto pc+3
  16: (55) if r5 != 0xc8 goto pc+2
  17: (b7) r0 = 1
  18: (95) exit
  19: (55) if r2 != 0x2 goto pc+4
  20: (55) if r4 != 0x5 goto pc+3
  21: (55) if r5 != 0x2 goto pc+2
  22: (b7) r0 = 1
  23: (95) exit
  24: (55) if r2 != 0x2 goto pc+3
  25: (55) if r4 != 0x88 goto pc+2
  26: (b7) r0 = 1
  27: (95) exit
  28: (55) if r2 != 0x2 goto pc+4
  29: (55) if r4 != 0x5 goto pc+3
  30: (55) if r5 != 0x1 goto pc+2
  31: (b7) r0 = 1
  32: (95) exit
  33: (55) if r2 != 0x2 goto pc+4
  34: (55) if r4 != 0x1 goto pc+3
  35: (55) if r5 != 0x9 goto pc+2
  36: (b7) r0 = 1
  37: (95) exit
  38: (55) if r2 != 0x2 goto pc+4
  39: (55) if r4 != 0x1 goto pc+3
  40: (55) if r5 != 0x5 goto pc+2
  41: (b7) r0 = 1
  42: (95) exit
  43: (55) if r2 != 0x2 goto pc+4
  44: (55) if r4 != 0x5 goto pc+3
  45: (55) if r5 != 0x0 goto pc+2
  46: (b7) r0 = 1
  47: (95) exit
  48: (55) if r2 != 0x2 goto pc+4
  49: (55) if r4 != 0x1 goto pc+3
  50: (55) if r5 != 0x7 goto pc+2
  51: (b7) r0 = 1
  52: (95) exit
  53: (55) if r2 != 0x2 goto pc+4
  54: (55) if r4 != 0x1 goto pc+3
  55: (55) if r5 != 0x8 goto pc+2
  56: (b7) r0 = 1
  57: (95) exit
  58: (55) if r2 != 0x2 goto pc+4
  59: (55) if r4 != 0x1 goto pc+3
  60: (55) if r5 != 0x3 goto pc+2
  61: (b7) r0 = 1
  62: (95) exit
  63: (55) if r2 != 0x1 goto pc+5
  64: (bc) w1 = w3
  65: (54) w1 &= 1
  66: (5d) if r1 != r3 goto pc+2
  67: (b7) r0 = 1
  68: (95) exit
  69: (55) if r2 != 0x2 goto pc+5
  70: (bc) w1 = w3
  71: (54) w1 &= 1
  72: (5d) if r1 != r3 goto pc+2
  73: (b7) r0 = 1
  74: (95) exit
  75: (55) if r2 != 0x1 goto pc+7
  76: (bc) w1 = w3
  77: (54) w1 &= 2
  78: (5d) if r1 != r3 goto pc+4
  79: (55) if r4 != 0x8 goto pc+3
  80: (55) if r5 != 0x0 goto pc+2
  81: (b7) r0 = 1
  82: (95) exit
  83: (55) if r2 != 0x2 goto pc+3
  84: (55) if r4 != 0x88 goto pc+2
  85: (b7) r0 = 1
  86: (95) exit
  87: (55) if r2 != 0x2 goto pc+4
  88: (55) if r4 != 0x1 goto pc+3
  89: (55) if r5 != 0x3 goto pc+2
  90: (b7) r0 = 1
  91: (95) exit
  92: (b7) r0 = 0
  93: (95) exit
