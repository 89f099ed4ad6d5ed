   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x2 goto pc+4
   7: (55) if r4 != 0xa goto pc+3
   8: (55) if r5 != 0xc8 goto pc+2
   9: (b4) w0 = 1
  10: (95) exit
  11: (55) if r2 != 0x2 goto pc+4
  12: (55) if r4 != 0x5 goto pc+3
  13: (55) if r5 != 0x2 goto pc+2
  14: (b4) w0 = 1
  15: (95) exit
  16: (55) if r2 != 0x2 goto pc+3
  17: (55) if r4 != 0x88 goto pc+2
  18: (b4) w0 = 1
  19: (95) exit
  20: (55) if r2 != 0x2 goto pc+4
  21: (55) if r4 != 0x5 goto pc+3
  22: (55) if r5 != 0x1 goto pc+2
  23: (b4) w0 = 1
  24: (95) exit
  25: (55) if r2 != 0x1 goto pc+5
  26: (bc) w1 = w3
  27: (54) w1 &= 1
  28: (5d) if r1 != r3 goto pc+2
  29: (b4) w0 = 1
  30: (95) exit
  31: (55) if r2 != 0x2 goto pc+5
  32: (bc) w1 = w3
  33: (54) w1 &= 1
  34: (5d) if r1 != r3 goto pc+2
  35: (b4) w0 = 1
  36: (95) exit
  37: (55) if r2 != 0x2 goto pc+4
  38: (55) if r4 != 0x1 goto pc+3
  39: (55) if r5 != 0x8 goto pc+2
  40: (b4) w0 = 1
  41: (95) exit
  42: (55) if r2 != 0x2 goto pc+4
  43: (55) if r4 != 0x1 goto pc+3
  44: (55) if r5 != 0x9 goto pc+2
  45: (b4) w0 = 1
  46: (95) exit
  47: (55) if r2 != 0x2 goto pc+4
  48: (55) if r4 != 0x5 goto pc+3
  49: (55) if r5 != 0x0 goto pc+2
  50: (b4) w0 = 1
  51: (95) exit
  52: (55) if r2 != 0x2 goto pc+4
  53: (55) if r4 != 0x1 goto pc+3
  54: (55) if r5 != 0x7 goto pc+2
  55: (b4) w0 = 1
  56: (95) exit
  57: (55) if r2 != 0x2 goto pc+4
  58: (55) if r4 != 0x1 goto pc+3
  59: (55) if r5 != 0x5 goto pc+2
  60: (b4) w0 = 1
  61: (95) exit
  62: (55) if r2 != 0x2 goto pc+4
  63: (55) if r4 != 0x1 goto pc+3
  64: (55) if r5 != 0x3 goto pc+2
  65: (b4) w0 = 1
  66: (95) exit
  67: (55) if r2 != 0x2 goto pc+6
  68: (bc) w1 = w3
  69: (54) w1 &= 1
  70: (5d) if r1 != r3 goto pc+3
  71: (55) if r4 != 0xa goto pc+2
  72: (b4) w0 = 0
  73: (95) exit
  74: (55) if r2 != 0x1 goto pc+3
  75: (55) if r4 != 0x8 goto pc+2
  76: (b4) w0 = 0
  77: (95) exit
  78: (55) if r2 != 0x2 goto pc+7
  79: (bc) w1 = w3
  80: (54) w1 &= 4
  81: (5d) if r1 != r3 goto pc+4
  82: (55) if r4 != 0x1 goto pc+3
  83: (55) if r5 != 0x3 goto pc+2
  84: (b4) w0 = 0
  85: (95) exit
  86: (b4) w0 = 1
  87: (95) exit
