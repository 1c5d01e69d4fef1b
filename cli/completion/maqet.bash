# bash completion for maqet (installed as bash-completion/completions/maqet).
# Everything it offers comes from maqet itself (`maqet __complete ...`): the
# command table, the options of each command's help text, and the VM names
# recorded in the state dir in use (--state-dir on the line, else the
# environment's).
_maqet() {
	local cur prev words cword
	if declare -F _init_completion >/dev/null 2>&1; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi
	local bin=${words[0]} i cmd='' ci=0
	local -a sd=()
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--state-dir) sd=(--state-dir "${words[i+1]}"); ((i++)) ;;
		--state-dir=*) sd=("${words[i]}") ;;
		-*) ;;
		*) cmd=${words[i]}; ci=$i; break ;;
		esac
	done
	if [[ -z $cmd ]]; then
		if [[ $prev == --state-dir ]]; then
			COMPREPLY=($(compgen -d -- "$cur"))
		elif [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--state-dir --version --help" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$("$bin" __complete commands 2>/dev/null)" -- "$cur"))
		fi
		return 0
	fi
	local argopts
	argopts=" $("$bin" __complete argopts "$cmd" 2>/dev/null | tr '\n' ' ') "
	for ((i = ci + 1; i < cword; i++)); do
		[[ ${words[i]} == --state-dir ]] && sd=(--state-dir "${words[i+1]}")
	done
	if [[ $cmd == export ]]; then
		# export: the engine is the first word, -o takes a directory (or -)
		case $prev in
		-o | --output)
			COMPREPLY=($(compgen -d -- "$cur"))
			compopt -o filenames 2>/dev/null
			return 0
			;;
		--report)
			COMPREPLY=($(compgen -W "$("$bin" __complete values export --report 2>/dev/null)" -- "$cur"))
			return 0
			;;
		esac
		if [[ $cur != -* && $prev != -f && $prev != --file ]]; then
			local w have=''
			for w in "${words[@]:ci+1:cword-ci-1}"; do
				[[ $w == nomad || $w == incus || $w == kubevirt ]] && have=1
			done
			if [[ -z $have ]]; then
				COMPREPLY=($(compgen -W "nomad incus kubevirt" -- "$cur"))
				return 0
			fi
		fi
	fi
	case $prev in
	-f | --file | --state-dir | --keyring)
		COMPREPLY=($(compgen -f -- "$cur"))
		compopt -o filenames 2>/dev/null
		return 0
		;;
	-o | --output)
		COMPREPLY=($(compgen -W "$("$bin" __complete values "$cmd" -o 2>/dev/null)" -- "$cur"))
		return 0
		;;
	esac
	if [[ $argopts == *" $prev "* ]]; then
		return 0 # a value we cannot guess
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$("$bin" __complete options "$cmd" 2>/dev/null)" -- "$cur"))
		return 0
	fi
	if [[ $cmd == help ]]; then
		COMPREPLY=($(compgen -W "$("$bin" __complete commands 2>/dev/null)" -- "$cur"))
		return 0
	fi
	# the first positional word after the command is the VM name
	local npos=0
	for ((i = ci + 1; i < cword; i++)); do
		if [[ ${words[i]} == -* ]]; then
			[[ $argopts == *" ${words[i]} "* ]] && ((i++))
			continue
		fi
		((npos++))
	done
	if ((npos == 0)); then
		COMPREPLY=($(compgen -W "$("$bin" "${sd[@]}" __complete vms "$cmd" 2>/dev/null)" -- "$cur"))
	fi
	return 0
}
complete -F _maqet maqet
