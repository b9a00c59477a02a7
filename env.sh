# Puts this checkout's commands on PATH: .venv/bin (imaging-consent, made by `make demo` or
# `make install`) and node_modules/.bin (ganache, anvil). Sets nothing else, and nothing secret.
# Source it from the project folder, in bash or zsh:   . ./env.sh
if [ ! -x .venv/bin/imaging-consent ]; then
    echo "env.sh: no .venv/bin/imaging-consent here: run \`make demo\` (or \`make install\`) in" \
        "the project folder first, and source env.sh from there" >&2
    return 1 2>/dev/null || exit 1
fi
for _ic_dir in "$PWD/node_modules/.bin" "$PWD/.venv/bin"; do
    case ":$PATH:" in
        *":$_ic_dir:"*) ;;
        *) export PATH="$_ic_dir:$PATH" ;;
    esac
done
unset _ic_dir
