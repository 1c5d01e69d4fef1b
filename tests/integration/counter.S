/* A boot-sector guest that counts on the serial console (for the live
 * snapshot tests): "c1\r\n", "c2\r\n", ... on COM1, one line about every
 * 50 ms (BIOS int 15h/86h wait), the count kept in memory, so a restored
 * memory state shows up as the count going back to the snapshotted value.
 *
 * Build: as --32 -o counter.o counter.S && ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o counter.img counter.o
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
	movb $'c', %al
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
	movb $'\r', %al
	call putc
	movb $'\n', %al
	call putc
	movb $0x86, %ah              /* wait CX:DX microseconds */
	xorw %cx, %cx
	movw $50000, %dx
	int $0x15
	jmp next
putc:
	movw $0x3f8, %dx
	outb %al, %dx
	ret
count:
	.word 0
	.org 510
	.byte 0x55, 0xaa
