"""Well-known browser and editor extensions by the names people write in personas.

``persona_developer.yml`` writes ``browser_extensions: ['adblock', 'https everywhere']`` and
``ide_extensions: ['python', 'docker', 'gitlens']``; browsers and editors need store ids.
Each table maps a normalised name to the real ids: the Chrome Web Store id (32 letters
a–p), Firefox's add-on id with its addons.mozilla.org slug, or a VS Code Marketplace
``publisher.name``. Ids written as such are taken as they are. Pure data and lookups, used
by the browser_extensions and ide_extensions handlers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHROME_ID = re.compile(r"^[a-p]{32}$")
VSCODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*\.[A-Za-z0-9][A-Za-z0-9._-]*(@[0-9A-Za-z.+-]+)?$")


def normalise(name: str) -> str:
    """``"uBlock-Origin"`` → ``"ublock origin"`` (case, ``-``, ``_`` and spacing ignored)."""
    return " ".join(re.sub(r"[-_]+", " ", name.strip().lower()).split())


@dataclass(frozen=True, slots=True)
class BrowserExtension:
    """One extension in the browsers' stores (either side may be missing)."""

    title: str
    chrome: str | None  # Chrome Web Store id
    firefox: tuple[str, str] | None  # (add-on id, addons.mozilla.org slug)


def _b(
    title: str, chrome: str | None, gecko: str | None = None, slug: str | None = None
) -> BrowserExtension:
    return BrowserExtension(title, chrome, (gecko, slug) if gecko and slug else None)


_BROWSER: dict[str, BrowserExtension] = {
    "ublock origin": _b(
        "uBlock Origin",
        "cjpalhdlnbpafiamejdnhcphjbkeiagm",
        "uBlock0@raymondhill.net",
        "ublock-origin",
    ),
    "ublock origin lite": _b(
        "uBlock Origin Lite",
        "ddkjiahejlhfcafbddmgiahcphecmpfh",
        "uBOLite@raymondhill.net",
        "ublock-origin-lite",
    ),
    "adblock": _b(
        "AdBlock",
        "gighmmpiobklfepjocnamgkkbiglidom",
        "jid1-NIfFY2CA8fy1tg@jetpack",
        "adblock-for-firefox",
    ),
    "adblock plus": _b(
        "Adblock Plus",
        "cfhdojbkjhnklbpkdaibdccddilifddb",
        "{d10d0bf8-f5b5-c8b4-a8b2-2b9879e08c5d}",
        "adblock-plus",
    ),
    "https everywhere": _b(
        "HTTPS Everywhere",
        "gcbommkclmclpchllfjekcdonpmejbdp",
        "https-everywhere@eff.org",
        "https-everywhere",
    ),
    "privacy badger": _b(
        "Privacy Badger",
        "pkehgijcmpdhfbdbbnkijodmdjhbjlgp",
        "jid1-MnnxcxisBPnSXQ@jetpack",
        "privacy-badger17",
    ),
    "bitwarden": _b(
        "Bitwarden",
        "nngceckbapebfimnlniiiahkandclblb",
        "{446900e4-71c2-419f-a6a7-df9c091e268b}",
        "bitwarden-password-manager",
    ),
    "lastpass": _b(
        "LastPass",
        "hdokiejnpimakedhajhdlcegeplioahd",
        "support@lastpass.com",
        "lastpass-password-manager",
    ),
    "1password": _b(
        "1Password",
        "aeblfdkhhhdcdjpifhhbdiojplfjncoa",
        "{d634138d-c276-4fc8-924b-40a0ea21d284}",
        "1password-x-password-manager",
    ),
    "keepassxc browser": _b(
        "KeePassXC-Browser",
        "oboonakemofpalcgghocfoadofidjkkk",
        "keepassxc-browser@keepassxc.org",
        "keepassxc-browser",
    ),
    "react developer tools": _b(
        "React Developer Tools",
        "fmkadmapgofadopljbjfkapdkoienihi",
        "@react-devtools",
        "react-devtools",
    ),
    "vue devtools": _b(
        "Vue.js devtools",
        "nhdogjmejiglipccpnnnanhbledajbpd",
        "{5caff8cc-3d2e-4110-a88a-003cc85b3858}",
        "vue-js-devtools",
    ),
    "redux devtools": _b(
        "Redux DevTools",
        "lmhkpmbekcpmknklioeibfkpmmfibljd",
        "extension@redux.devtools",
        "reduxdevtools",
    ),
    "grammarly": _b(
        "Grammarly",
        "kbfnbcaeplbcioakkpcpgfkobkghlhen",
        "87677a2c52b84ad3a151a4a72f5bd3c4@jetpack",
        "grammarly-1",
    ),
    "dark reader": _b(
        "Dark Reader", "eimadpbcbfnmbkopoojfekhnkhdbieeh", "addon@darkreader.org", "darkreader"
    ),
    "ghostery": _b(
        "Ghostery", "mlomiejdfkolichcflejclcbmpeaniij", "firefox@ghostery.com", "ghostery"
    ),
    "duckduckgo privacy essentials": _b(
        "DuckDuckGo Privacy Essentials",
        "bkdgflcldnnnapblkhphbgpggdiikppg",
        "jid1-ZAdIEUB7XOzOJw@jetpack",
        "duckduckgo-for-firefox",
    ),
    "tampermonkey": _b(
        "Tampermonkey",
        "dhdgffkkebhmkfjojejmpbldmpobfkfo",
        "firefox@tampermonkey.net",
        "tampermonkey",
    ),
    "wappalyzer": _b(
        "Wappalyzer", "gppongmhjkpfnbhagpmjfkannfbllamg", "wappalyzer@crunchlabz.com", "wappalyzer"
    ),
    "decentraleyes": _b(
        "Decentraleyes",
        "ldpochfccmkkmhdbclfhpagapcfdljkj",
        "jid1-BoFifL9Vbdl2zQ@jetpack",
        "decentraleyes",
    ),
    "noscript": _b(
        "NoScript",
        "doojmbjmlfjjnbmnoijecmcbfeoakpjm",
        "{73a6fe31-595d-460b-a920-fcc0f8843232}",
        "noscript",
    ),
    "sponsorblock": _b(
        "SponsorBlock",
        "mnjggcdmjocbbbhaepdhchncahnbgone",
        "sponsorBlocker@ajay.app",
        "sponsorblock",
    ),
    "clearurls": _b(
        "ClearURLs",
        "lckanjgmijmafbedllaakclkaicjfmnk",
        "{74145f27-f039-47ce-a470-a662b129930a}",
        "clearurls",
    ),
    "cookie autodelete": _b(
        "Cookie AutoDelete",
        "fhcgjolkccmbidfldomjliifgaodjagh",
        "CookieAutoDelete@kennydo.com",
        "cookie-autodelete",
    ),
    "vimium": _b(
        "Vimium",
        "dbepggeogbaibhgnhhndojpepiihcmeb",
        "{d7742d87-e61d-4b78-b8a1-b469842139fa}",
        "vimium-ff",
    ),
    "google translate": _b("Google Translate", "aapbdbdomjkkjkaonfhkkikfgjllcleb"),
}
_BROWSER_ALIASES = {
    "ublock": "ublock origin",
    "ubo": "ublock origin",
    "ubol": "ublock origin lite",
    "abp": "adblock plus",
    "adblockplus": "adblock plus",
    "httpseverywhere": "https everywhere",
    "privacybadger": "privacy badger",
    "bitwarden password manager": "bitwarden",
    "lastpass password manager": "lastpass",
    "1password password manager": "1password",
    "keepassxc": "keepassxc browser",
    "react devtools": "react developer tools",
    "vue.js devtools": "vue devtools",
    "vuejs devtools": "vue devtools",
    "vue js devtools": "vue devtools",
    "redux developer tools": "redux devtools",
    "darkreader": "dark reader",
    "duckduckgo": "duckduckgo privacy essentials",
    "vimium ff": "vimium",
}


def browser_extension(entry: str) -> BrowserExtension | None:
    """The extension an entry names: a well-known name, or a Chrome Web Store id."""
    text = entry.strip()
    if CHROME_ID.match(text):
        for known in _BROWSER.values():
            if known.chrome == text:
                return known
        return BrowserExtension(text, text, None)
    key = normalise(text)
    key = _BROWSER_ALIASES.get(key, key)
    return _BROWSER.get(key)


# --- editor extensions (VS Code Marketplace / Open VSX ids) -----------------------------

_IDE: dict[str, str] = {
    "python": "ms-python.python",
    "pylance": "ms-python.vscode-pylance",
    "debugpy": "ms-python.debugpy",
    "black": "ms-python.black-formatter",
    "isort": "ms-python.isort",
    "flake8": "ms-python.flake8",
    "pylint": "ms-python.pylint",
    "mypy": "ms-python.mypy-type-checker",
    "ruff": "charliermarsh.ruff",
    "jupyter": "ms-toolsai.jupyter",
    "docker": "ms-azuretools.vscode-docker",
    "gitlens": "eamodio.gitlens",
    "git graph": "mhutchie.git-graph",
    "github pull requests": "GitHub.vscode-pull-request-github",
    "gitlab workflow": "GitLab.gitlab-workflow",
    "copilot": "GitHub.copilot",
    "eslint": "dbaeumer.vscode-eslint",
    "prettier": "esbenp.prettier-vscode",
    "go": "golang.go",
    "rust analyzer": "rust-lang.rust-analyzer",
    "c/c++": "ms-vscode.cpptools",
    "cmake tools": "ms-vscode.cmake-tools",
    "makefile tools": "ms-vscode.makefile-tools",
    "java": "redhat.java",
    "java extension pack": "vscjava.vscode-java-pack",
    "kotlin": "fwcd.kotlin",
    "scala": "scalameta.metals",
    "c#": "ms-dotnettools.csharp",
    "powershell": "ms-vscode.powershell",
    "php": "bmewburn.vscode-intelephense-client",
    "ruby": "Shopify.ruby-lsp",
    "haskell": "haskell.haskell",
    "elixir": "JakeBecker.elixir-ls",
    "dart": "Dart-Code.dart-code",
    "flutter": "Dart-Code.flutter",
    "zig": "ziglang.vscode-zig",
    "deno": "denoland.vscode-deno",
    "vue": "Vue.volar",
    "svelte": "svelte.svelte-vscode",
    "tailwind css": "bradlc.vscode-tailwindcss",
    "graphql": "GraphQL.vscode-graphql",
    "prisma": "Prisma.prisma",
    "yaml": "redhat.vscode-yaml",
    "xml": "redhat.vscode-xml",
    "toml": "tamasfe.even-better-toml",
    "ansible": "redhat.ansible",
    "terraform": "hashicorp.terraform",
    "kubernetes": "ms-kubernetes-tools.vscode-kubernetes-tools",
    "remote ssh": "ms-vscode-remote.remote-ssh",
    "dev containers": "ms-vscode-remote.remote-containers",
    "wsl": "ms-vscode-remote.remote-wsl",
    "live share": "ms-vsliveshare.vsliveshare",
    "vim": "vscodevim.vim",
    "markdownlint": "DavidAnson.vscode-markdownlint",
    "shellcheck": "timonwong.shellcheck",
    "editorconfig": "EditorConfig.EditorConfig",
    "dotenv": "mikestead.dotenv",
    "hex editor": "ms-vscode.hexeditor",
    "code spell checker": "streetsidesoftware.code-spell-checker",
    "error lens": "usernamehw.errorlens",
    "path intellisense": "christian-kohler.path-intellisense",
    "rest client": "humao.rest-client",
    "thunder client": "rangav.vscode-thunder-client",
    "live server": "ritwickdey.LiveServer",
    "sqltools": "mtxr.sqltools",
    "material icon theme": "PKief.material-icon-theme",
    "dracula": "dracula-theme.theme-dracula",
    "one dark pro": "zhuangtongfa.Material-theme",
    "github theme": "GitHub.github-vscode-theme",
}
_IDE_ALIASES = {
    "rust": "rust analyzer",
    "golang": "go",
    "cpp": "c/c++",
    "c++": "c/c++",
    "cpptools": "c/c++",
    "csharp": "c#",
    "intelephense": "php",
    "volar": "vue",
    "tailwind": "tailwind css",
    "tailwindcss": "tailwind css",
    "github copilot": "copilot",
    "remote containers": "dev containers",
    "devcontainers": "dev containers",
    "liveshare": "live share",
    "spell checker": "code spell checker",
    "errorlens": "error lens",
    "restclient": "rest client",
    "git lens": "gitlens",
    "gitgraph": "git graph",
    "docker tools": "docker",
    "pylint linter": "pylint",
    "metals": "scala",
    "even better toml": "toml",
    "jupyter notebooks": "jupyter",
}


def ide_extension(entry: str) -> str | None:
    """The Marketplace id an entry names (``publisher.name`` is taken as it is)."""
    text = entry.strip()
    if VSCODE_ID.match(text):
        return text
    key = normalise(text)
    key = _IDE_ALIASES.get(key, key)
    return _IDE.get(key)
