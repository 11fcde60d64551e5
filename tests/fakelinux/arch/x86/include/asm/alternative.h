/* SPDX-License-Identifier: GPL-2.0 */
/* struct alt_instr as 7.3's arch/x86/include/asm/alternative.h has it (7.2 and 6.12 too). */
#ifndef _ASM_X86_ALTERNATIVE_H
#define _ASM_X86_ALTERNATIVE_H

struct alt_instr;

struct alt_instr {
	s32 instr_offset;	/* original instruction */
	s32 repl_offset;	/* offset to replacement instruction */

	union {
		struct {
			u32 cpuid: 16;	/* CPUID bit set for replacement */
			u32 flags: 16;	/* patching control flags */
		};
		u32 ft_flags;
	};

	u8  instrlen;		/* length of original instruction */
	u8  replacementlen;	/* length of new instruction */
} __packed;

extern struct alt_instr __alt_instructions[], __alt_instructions_end[];
extern void apply_alternatives(struct alt_instr *start, struct alt_instr *end);

#endif
