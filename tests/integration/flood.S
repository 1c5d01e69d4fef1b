/* A boot-sector guest that floods the serial console (for the log rotation
 * tests): "f1 ...padding...\r\n", "f2 ...", 64-byte lines in bursts of 8 with a
 * 1 ms BIOS wait (int 15h/86h) between bursts, so a log grows by tens to
 * hundreds of KiB a second and the numbers show which part of the output a
 * file holds.
 *
 * Build: as --32 -o flood.o flood.S && ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o flood.img flood.o
 */
	.code16
	.globl _start
_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	movw %ax, %ss
	movw $0x7c00, %sp
	sti
next:
	incw count
	movb $'f', %al
	call putc
	movw count, %ax
	xorw %cx, %cx                /* digits pushed */
1:	xorw %dx, %dx
	movw $10, %bx
	divw %bx
	pushw %dx
	incw %cx
	testw %ax, %ax
	jnz 1b
2:	popw %ax
	addb $'0', %al
	call putc
	loop 2b
	movw $pad, %si               /* a fixed tail: the lines are long */
3:	lodsb
	testb %al, %al
	jz 4f
	call putc
	jmp 3b
4:	decb burst                   /* 8 lines between waits */
	jnz next
	movb $8, burst
	movb $0x86, %ah              /* wait CX:DX microseconds */
	xorw %cx, %cx
	movw $1000, %dx
	int $0x15
	jmp next
putc:
	pushw %dx
	movw $0x3f8, %dx
	outb %al, %dx
	popw %dx
	ret
pad:
	.ascii " flood-line-padding-abcdefghijklmnopqrstuvwxyz-0123456789\r\n"
	.byte 0
count:
	.word 0
burst:
	.byte 8
	.org 510
	.byte 0x55, 0xaa
