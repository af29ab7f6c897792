// Behavioural model of the Lattice ECP5 DP16KD block RAM, for simulating Yosys netlists
// before and after hw.build.outreg (tests/test_outreg.py). Yosys's own DP16KD in
// share/ecp5/cells_sim.v is a black box.
//
// Where the semantics come from: Lattice TN1264, "ECP5 and ECP5-5G Memory Usage Guide"
// (DP16KD and PDPW16KD), for the port signals and parameters; Yosys's
// share/lattice/brams_map_16kd.v and brams_16kd.txt for how memory_libmap uses them; and
// nextpnr-ecp5 (pack.cc: PDPW16KD -> DP16KD; bitstream.cc: REGMODE_A/B, OCEx) for the
// pseudo-dual-port form. Per port x (A, B):
//   - at a rising CLKx edge with CEx = 1 (and the chip select matching CSDECODE_x), a
//     write (WEx = 1) stores DIx into the addressed word (for x18 only the 9-bit bytes whose
//     byte enable ADx1/ADx0 is 1); the port's output latch takes the addressed word on a
//     read, and on a write keeps its value (WRITEMODE NORMAL), takes the new word
//     (WRITETHROUGH) or the old word (READBEFOREWRITE). With CEx = 0 nothing changes.
//   - REGMODE_x = "NOREG": DOx is the output latch. "OUTREG": DOx is a register that takes
//     the latch's value at a rising CLKx edge with OCEx = 1 (one cycle more latency).
//   - RSTx clears the latch and the register, at the clock edge (RESETMODE "SYNC") or at
//     once ("ASYNC"). hw.build.outreg only converts ports whose RSTx is tied to 0, so
//     nothing the tests compare depends on this.
//   - Pseudo-dual-port (DATA_WIDTH_A = 36, Yosys's $__PDPW16KD_): port A writes 36-bit
//     words at ADA13..5, with the byte enables on ADA3..0 (WEA is not used); DIA holds bits
//     17..0 and DIB bits 35..18. Port B reads DATA_WIDTH_B bits; a 36-bit read gives bits
//     17..0 on DOA and 35..18 on DOB. Its latch, register, OCEB, RSTB and REGMODE_B govern
//     all 36 bits (nextpnr sets REGMODE_A = REGMODE_B for a PDPW16KD; the model requires
//     them equal).
// Simplifications: the memory is one array of 18432 bits in which a word of width w at
// address a is bits a*w .. a*w+w-1; exact for ports of one width and for 36-bit writes
// with 36-bit reads, not for mixing the x1/x2/x4 and x9/x18/x36 organisations (where the
// device places the parity bits differently); the initial contents are all 0 (INITVAL is
// not read: the test memories start empty); clocks are not inverted (CLKxMUX);
// the outputs start at 0.
`timescale 1ns/1ps
module DP16KD(
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA,
  input CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB,
  input CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";
  parameter CLKAMUX = "CLKA";
  parameter CLKBMUX = "CLKB";
  parameter INITVAL_00 = 0;
  parameter INITVAL_01 = 0;
  parameter INITVAL_02 = 0;
  parameter INITVAL_03 = 0;
  parameter INITVAL_04 = 0;
  parameter INITVAL_05 = 0;
  parameter INITVAL_06 = 0;
  parameter INITVAL_07 = 0;
  parameter INITVAL_08 = 0;
  parameter INITVAL_09 = 0;
  parameter INITVAL_0A = 0;
  parameter INITVAL_0B = 0;
  parameter INITVAL_0C = 0;
  parameter INITVAL_0D = 0;
  parameter INITVAL_0E = 0;
  parameter INITVAL_0F = 0;
  parameter INITVAL_10 = 0;
  parameter INITVAL_11 = 0;
  parameter INITVAL_12 = 0;
  parameter INITVAL_13 = 0;
  parameter INITVAL_14 = 0;
  parameter INITVAL_15 = 0;
  parameter INITVAL_16 = 0;
  parameter INITVAL_17 = 0;
  parameter INITVAL_18 = 0;
  parameter INITVAL_19 = 0;
  parameter INITVAL_1A = 0;
  parameter INITVAL_1B = 0;
  parameter INITVAL_1C = 0;
  parameter INITVAL_1D = 0;
  parameter INITVAL_1E = 0;
  parameter INITVAL_1F = 0;
  parameter INITVAL_20 = 0;
  parameter INITVAL_21 = 0;
  parameter INITVAL_22 = 0;
  parameter INITVAL_23 = 0;
  parameter INITVAL_24 = 0;
  parameter INITVAL_25 = 0;
  parameter INITVAL_26 = 0;
  parameter INITVAL_27 = 0;
  parameter INITVAL_28 = 0;
  parameter INITVAL_29 = 0;
  parameter INITVAL_2A = 0;
  parameter INITVAL_2B = 0;
  parameter INITVAL_2C = 0;
  parameter INITVAL_2D = 0;
  parameter INITVAL_2E = 0;
  parameter INITVAL_2F = 0;
  parameter INITVAL_30 = 0;
  parameter INITVAL_31 = 0;
  parameter INITVAL_32 = 0;
  parameter INITVAL_33 = 0;
  parameter INITVAL_34 = 0;
  parameter INITVAL_35 = 0;
  parameter INITVAL_36 = 0;
  parameter INITVAL_37 = 0;
  parameter INITVAL_38 = 0;
  parameter INITVAL_39 = 0;
  parameter INITVAL_3A = 0;
  parameter INITVAL_3B = 0;
  parameter INITVAL_3C = 0;
  parameter INITVAL_3D = 0;
  parameter INITVAL_3E = 0;
  parameter INITVAL_3F = 0;

  localparam PDP = (DATA_WIDTH_A == 36);

  wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
  wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
  // CSDECODE "0b000" (all Yosys emits): the port is selected while its CS pins are 000
  wire sel_a = ({CSA2, CSA1, CSA0} == 3'b000);
  wire sel_b = ({CSB2, CSB1, CSB0} == 3'b000);

  reg mem [0:18431];
  reg [35:0] lat_a = 0, lat_b = 0, reg_a = 0, reg_b = 0;
  integer i;
  initial begin
    for (i = 0; i < 18432; i = i + 1) mem[i] = 1'b0;
    if (CSDECODE_A != "0b000" || CSDECODE_B != "0b000") begin
      $display("DP16KD model: only CSDECODE 0b000 is modelled"); $finish;
    end
    if (CLKAMUX != "CLKA" || CLKBMUX != "CLKB") begin
      $display("DP16KD model: inverted clocks are not modelled"); $finish;
    end
    if (PDP && REGMODE_A != REGMODE_B) begin
      $display("DP16KD model: a pseudo-dual-port RAM needs REGMODE_A = REGMODE_B"); $finish;
    end
  end

  // word address: the address bits above the ones a width leaves for byte enables
  function integer word_addr(input [13:0] ad, input integer width);
    case (width)
      1: word_addr = ad;
      2: word_addr = ad[13:1];
      4: word_addr = ad[13:2];
      9: word_addr = ad[13:3];
      18: word_addr = ad[13:4];
      default: word_addr = ad[13:5];
    endcase
  endfunction

  function [35:0] read_word(input integer addr, input integer width);
    integer k;
    begin
      read_word = 0;
      for (k = 0; k < width; k = k + 1) read_word[k] = mem[addr * width + k];
    end
  endfunction

  // the word after a write of `data` under byte enables `be` (one enable per 9-bit byte)
  function [35:0] merge(input [35:0] old, input [35:0] data, input [3:0] be, input integer width);
    integer k;
    begin
      merge = old;
      for (k = 0; k < width; k = k + 1)
        if (width < 18 || be[k / 9]) merge[k] = data[k];
    end
  endfunction

  // Writes are non-blocking, so a read at the same edge sees the old word on either port.
  task write_word(input integer addr, input [35:0] data, input integer width);
    integer k;
    for (k = 0; k < width; k = k + 1) mem[addr * width + k] <= data[k];
  endtask

  wire sync_reset = (RESETMODE == "SYNC");

  always @(posedge CLKA) begin : port_a
    integer addr;
    reg [35:0] old, new_word;
    if (PDP) begin
      addr = word_addr(ada, 36);
      if (CEA && sel_a)
        write_word(addr, merge(read_word(addr, 36), {dib, dia}, ada[3:0], 36), 36);
    end else begin
      addr = word_addr(ada, DATA_WIDTH_A);
      old = read_word(addr, DATA_WIDTH_A);
      new_word = merge(old, {18'b0, dia}, {2'b0, ada[1:0]}, DATA_WIDTH_A);
      if (CEA && sel_a) begin
        if (!WEA) lat_a <= old;
        else begin
          write_word(addr, new_word, DATA_WIDTH_A);
          if (WRITEMODE_A == "WRITETHROUGH") lat_a <= new_word;
          else if (WRITEMODE_A == "READBEFOREWRITE") lat_a <= old;
        end
      end
      if (OCEA) reg_a <= lat_a;
      if (RSTA && sync_reset) begin lat_a <= 0; reg_a <= 0; end
    end
  end

  always @(posedge CLKB) begin : port_b
    integer addr;
    reg [35:0] old, new_word;
    addr = word_addr(adb, DATA_WIDTH_B);
    old = read_word(addr, DATA_WIDTH_B);
    new_word = merge(old, {18'b0, dib}, {2'b0, adb[1:0]}, DATA_WIDTH_B);
    if (CEB && sel_b) begin
      if (PDP || !WEB) lat_b <= old;
      else begin
        write_word(addr, new_word, DATA_WIDTH_B);
        if (WRITEMODE_B == "WRITETHROUGH") lat_b <= new_word;
        else if (WRITEMODE_B == "READBEFOREWRITE") lat_b <= old;
      end
    end
    if (OCEB) reg_b <= lat_b;
    if (RSTB && sync_reset) begin lat_b <= 0; reg_b <= 0; end
  end

  always @(posedge RSTA) if (!sync_reset) begin lat_a <= 0; reg_a <= 0; end
  always @(posedge RSTB) if (!sync_reset) begin lat_b <= 0; reg_b <= 0; end

  wire [35:0] out_a = (REGMODE_A == "OUTREG") ? reg_a : lat_a;
  wire [35:0] out_b = (REGMODE_B == "OUTREG") ? reg_b : lat_b;
  // PDP 36-bit read: bits 17..0 on DOA, 35..18 on DOB; otherwise each port its own word
  wire [17:0] doa = (PDP && DATA_WIDTH_B == 36) ? out_b[17:0] : out_a[17:0];
  wire [17:0] dob = (PDP && DATA_WIDTH_B == 36) ? out_b[35:18] : out_b[17:0];
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
