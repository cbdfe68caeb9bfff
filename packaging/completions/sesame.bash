# bash completion for sesame(8). Installed as
# /usr/share/bash-completion/completions/sesame.

_sesame() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="serve status reload revoke cleanup knock open proxy keygen pubkey import export fwknop ca demo version"
    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$commands help" -- "$cur"))
        return
    fi

    local cmd=${words[1]} opts=""
    case $prev in
        -c|--config|--knockd-conf|--key|--secret|--profiles|-o)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        --socket)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        --state-dir|--dir)
            COMPREPLY=($(compgen -d -- "$cur"))
            return ;;
        -i)
            COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
            return ;;
    esac
    case $cmd in
        serve)   opts="-c --config --check --knockd-conf -i --knockd-parity --state-dir --keep-pending --log-level --log-format" ;;
        status)  opts="--json -n --socket" ;;
        reload)  opts="--socket" ;;
        revoke)  opts="--socket" ;;
        cleanup) opts="--table" ;;
        knock)   opts="--delay -d -4 -6 -u --wait --wait-interval -v --door --secret --period --port-range --steps --period-offset" ;;
        open)    opts="--key --cert --gateway-key --port --duration --for-address -4 -6 --resend --wait-timeout --profiles --wait --wait-interval -v --print" ;;
        proxy)   opts="--key --cert --gateway-key --port --duration --for-address -4 -6 --resend --wait-timeout --profiles --wait-interval -v" ;;
        keygen)  opts="-o --gateway" ;;
        export)  opts="-c --config --door --table" ;;
        import)  opts="knockd" ;;
        demo)    opts="--duration" ;;
        ca)
            if [[ $cword -eq 2 ]]; then
                COMPREPLY=($(compgen -W "init issue revoke crl list" -- "$cur"))
                return
            fi
            opts="--dir --name --key-type --valid-for --crl-valid-for --allow --max-duration --gateway" ;;
        pubkey)  COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    if [[ $cur == -* || $cmd == import ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}
complete -F _sesame sesame
