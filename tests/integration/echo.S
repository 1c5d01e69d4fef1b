/* A boot-sector guest that echoes its serial console (COM1), for the console
 * tests: it prints "maqet-echo up\r\n", then answers every byte it receives
 * with "[<byte>]", so the test can tell the guest's answer from a terminal's
 * local echo.  It sleeps with hlt between BIOS timer ticks (18.2 Hz) and polls
 * the UART's line status register; QEMU holds further input back while the
 * receive register is full, so nothing is lost.
 *
 * Build: as --32 -o echo.o echo.S && ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o echo.img echo.o
 */
	.code16
	.globl _start
_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	movw %ax, %ss
	movw $0x7c00, %sp
	movw $msg, %si
1:	lodsb
	testb %al, %al
	jz idle
	movw $0x3f8, %dx
	outb %al, %dx
	jmp 1b
idle:
	sti
	hlt
	cli
poll:
	movw $0x3fd, %dx             /* LSR */
	inb %dx, %al
	testb $1, %al                /* data ready */
	jz idle
	movw $0x3f8, %dx
	inb %dx, %al
	movb %al, %bl
	movb $'[', %al
	outb %al, %dx
	movb %bl, %al
	outb %al, %dx
	movb $']', %al
	outb %al, %dx
	jmp poll

msg:	.asciz "maqet-echo up\r\n"
	.org 510
	.word 0xaa55
