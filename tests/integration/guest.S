/* A tiny boot-sector guest for integration tests (PC machine, SeaBIOS).
 *
 * It writes "maqet-guest up\r\n" to COM1, then, depending on the byte `mode`
 * (patched by the test at offset 509):
 *   0: arms the ACPI power button (PIIX4 PM1 enable, PWRBTN_EN) and sleeps
 *      with hlt until QEMU's system_powerdown sets PWRBTN_STS, then powers
 *      off through PM1 control (SLP_TYP=0, SLP_EN): a guest-initiated ACPI
 *      poweroff, exactly what an OS does on the power button;
 *   1: powers itself off at once (a guest that shuts down by itself);
 *   2: ignores the power button (sleeps forever).
 * The PM I/O base is read from the PIIX4 PM function's PMBASE register
 * (PCI 00:01.3, offset 0x40), so it does not depend on the firmware's choice.
 *
 * Build: as --32 -o guest.o guest.S && ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -o guest.img guest.o
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
	jz 2f
	movw $0x3f8, %dx
	outb %al, %dx
	jmp 1b
2:	movl $0x80000B40, %eax       /* PCI config: bus 0, dev 1, fn 3, reg 0x40 */
	movw $0xcf8, %dx
	outl %eax, %dx
	movw $0xcfc, %dx
	inl %dx, %eax
	andw $0xffc0, %ax
	movw %ax, %bx                /* bx = PM I/O base */
	movb mode, %al
	cmpb $1, %al
	je poweroff
	cmpb $2, %al
	je sleep_forever
	movw %bx, %dx                /* clear stale status: write 1 to PWRBTN_STS */
	movw $0x0100, %ax
	outw %ax, %dx
	movw %bx, %dx
	addw $2, %dx                 /* PM1_EN */
	movw $0x0100, %ax            /* PWRBTN_EN */
	outw %ax, %dx
wait_button:
	sti
	hlt                          /* woken by the BIOS timer tick (18.2 Hz) */
	cli
	movw %bx, %dx                /* PM1_STS */
	inw %dx, %ax
	testw $0x0100, %ax           /* PWRBTN_STS */
	jz wait_button
poweroff:
	movw $okmsg, %si
3:	lodsb
	testb %al, %al
	jz 4f
	movw $0x3f8, %dx
	outb %al, %dx
	jmp 3b
4:	movw %bx, %dx
	addw $4, %dx                 /* PM1_CNT */
	movw $0x2000, %ax            /* SLP_EN, SLP_TYP = 0: soft off (S5) */
	outw %ax, %dx
sleep_forever:
	sti
	hlt
	jmp sleep_forever

msg:	.asciz "maqet-guest up\r\n"
okmsg:	.asciz "maqet-guest powering off\r\n"
	.org 509
mode:	.byte 0
	.word 0xaa55
