   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (56) if w2 != 0x2 goto pc+3
   7: (46) if w3 & 0xfffffffe goto pc+2
   8: (b7) r0 = 1
   9: (95) exit
  10: (56) if w2 != 0x1 goto pc+3
  11: (46) if w3 & 0xfffffffe goto pc+2
  12: (b7) r0 = 1
  13: (95) exit
  14: (56) if w2 != 0x2 goto pc+5
  15: (56) if w4 != 0x1 goto pc+4
  16: (56) if w5 != 0x3 goto pc+3
  17: (46) if w3 & 0xfffffff8 goto pc+2
  18: (b7) r0 = 1
  19: (95) exit
  20: (56) if w2 != 0x2 goto pc+5
  21: (56) if w4 != 0x1 goto pc+4
  22: (56) if w5 != 0x5 goto pc+3
  23: (46) if w3 & 0xfffffff8 goto pc+2
  24: (b7) r0 = 1
  25: (95) exit
  26: (56) if w2 != 0x2 goto pc+5
  27: (56) if w4 != 0x1 goto pc+4
  28: (56) if w5 != 0x7 goto pc+3
  29: (46) if w3 & 0xfffffff8 goto pc+2
  30: (b7) r0 = 1
  31: (95) exit
  32: (56) if w2 != 0x2 goto pc+5
  33: (56) if w4 != 0x1 goto pc+4
  34: (56) if w5 != 0x8 goto pc+3
  35: (46) if w3 & 0xfffffff8 goto pc+2
  36: (b7) r0 = 1
  37: (95) exit
  38: (56) if w2 != 0x2 goto pc+5
  39: (56) if w4 != 0x1 goto pc+4
  40: (56) if w5 != 0x9 goto pc+3
  41: (46) if w3 & 0xfffffff8 goto pc+2
  42: (b7) r0 = 1
  43: (95) exit
  44: (56) if w2 != 0x2 goto pc+5
  45: (56) if w4 != 0x5 goto pc+4
  46: (56) if w5 != 0x0 goto pc+3
  47: (46) if w3 & 0xfffffff8 goto pc+2
  48: (b7) r0 = 1
  49: (95) exit
  50: (56) if w2 != 0x2 goto pc+5
  51: (56) if w4 != 0x5 goto pc+4
  52: (56) if w5 != 0x2 goto pc+3
  53: (46) if w3 & 0xfffffff8 goto pc+2
  54: (b7) r0 = 1
  55: (95) exit
  56: (56) if w2 != 0x2 goto pc+4
  57: (56) if w4 != 0x88 goto pc+3
  58: (46) if w3 & 0xfffffff8 goto pc+2
  59: (b7) r0 = 1
  60: (95) exit
  61: (56) if w2 != 0x2 goto pc+5
  62: (56) if w4 != 0xa goto pc+4
  63: (56) if w5 != 0xc8 goto pc+3
  64: (46) if w3 & 0xfffffff8 goto pc+2
  65: (b7) r0 = 1
  66: (95) exit
  67: (b7) r0 = 0
  68: (95) exit
