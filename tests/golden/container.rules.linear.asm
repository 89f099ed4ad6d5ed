   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (16) if w2 == 0x1 goto pc+3
   7: (16) if w2 == 0x2 goto pc+7
   8: (b7) r0 = 0
   9: (95) exit
  10: (46) if w3 & 0xfffffffe goto pc+2
  11: (b7) r0 = 1
  12: (95) exit
  13: (b7) r0 = 0
  14: (95) exit
  15: (46) if w3 & 0xfffffffe goto pc+2
  16: (b7) r0 = 1
  17: (95) exit
  18: (56) if w4 != 0x1 goto pc+6
  19: (56) if w5 != 0x3 goto pc+3
  20: (46) if w3 & 0xfffffff8 goto pc+2
  21: (b7) r0 = 1
  22: (95) exit
  23: (61) r4 = *(u32 *)(r1 +4)
  24: (61) r5 = *(u32 *)(r1 +8)
  25: (56) if w4 != 0x1 goto pc+6
  26: (56) if w5 != 0x5 goto pc+3
  27: (46) if w3 & 0xfffffff8 goto pc+2
  28: (b7) r0 = 1
  29: (95) exit
  30: (61) r4 = *(u32 *)(r1 +4)
  31: (61) r5 = *(u32 *)(r1 +8)
  32: (56) if w4 != 0x1 goto pc+6
  33: (56) if w5 != 0x7 goto pc+3
  34: (46) if w3 & 0xfffffff8 goto pc+2
  35: (b7) r0 = 1
  36: (95) exit
  37: (61) r4 = *(u32 *)(r1 +4)
  38: (61) r5 = *(u32 *)(r1 +8)
  39: (56) if w4 != 0x1 goto pc+6
  40: (56) if w5 != 0x8 goto pc+3
  41: (46) if w3 & 0xfffffff8 goto pc+2
  42: (b7) r0 = 1
  43: (95) exit
  44: (61) r4 = *(u32 *)(r1 +4)
  45: (61) r5 = *(u32 *)(r1 +8)
  46: (56) if w4 != 0x1 goto pc+6
  47: (56) if w5 != 0x9 goto pc+3
  48: (46) if w3 & 0xfffffff8 goto pc+2
  49: (b7) r0 = 1
  50: (95) exit
  51: (61) r4 = *(u32 *)(r1 +4)
  52: (61) r5 = *(u32 *)(r1 +8)
  53: (56) if w4 != 0x5 goto pc+6
  54: (56) if w5 != 0x0 goto pc+3
  55: (46) if w3 & 0xfffffff8 goto pc+2
  56: (b7) r0 = 1
  57: (95) exit
  58: (61) r4 = *(u32 *)(r1 +4)
  59: (61) r5 = *(u32 *)(r1 +8)
  60: (56) if w4 != 0x5 goto pc+6
  61: (56) if w5 != 0x2 goto pc+3
  62: (46) if w3 & 0xfffffff8 goto pc+2
  63: (b7) r0 = 1
  64: (95) exit
  65: (61) r4 = *(u32 *)(r1 +4)
  66: (61) r5 = *(u32 *)(r1 +8)
  67: (56) if w4 != 0x88 goto pc+4
  68: (46) if w3 & 0xfffffff8 goto pc+2
  69: (b7) r0 = 1
  70: (95) exit
  71: (61) r4 = *(u32 *)(r1 +4)
  72: (56) if w4 != 0xa goto pc+6
  73: (56) if w5 != 0xc8 goto pc+3
  74: (46) if w3 & 0xfffffff8 goto pc+2
  75: (b7) r0 = 1
  76: (95) exit
  77: (61) r4 = *(u32 *)(r1 +4)
  78: (61) r5 = *(u32 *)(r1 +8)
  79: (b7) r0 = 0
  80: (95) exit
