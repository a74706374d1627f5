//! The catalogue compiled into `confabd`: small ASCII-art stickers, drawn
//! for Confab. Each is (id, name, art); the art's lines are separated by
//! `\n` and carry no trailing spaces.

/// Every built-in sticker, in id order (a test holds the order).
pub const STICKERS: &[(&str, &str, &str)] = &[
    ("bunny", "Bunny", "(\\_/)\n(o.o)\n(> <)"),
    ("cake", "Cake", "   i i i\n  |~~~~~|\n  |  *  |\n _|_____|_"),
    ("cat", "Cat", " /\\_/\\\n( o.o )\n > ^ <"),
    (
        "coffee",
        "Coffee",
        "   ( (\n    ) )\n  .______.\n  |      |]\n  \\      /\n   `----'",
    ),
    (
        "facepalm",
        "Facepalm",
        "   ____\n  /    \\\n |  \\|/|\n | (-_-|\n  \\____/",
    ),
    (
        "ferris",
        "Ferris",
        "    _~^~^~_\n\\) /  o o  \\ (/\n  '_   -   _'\n  / '-----' \\",
    ),
    ("fish", "Fish", "    /`\n><((((*>\n    \\,"),
    ("ghost", "Ghost", "  .-.\n (o o)\n | O |\n |   |\n '~~~'"),
    (
        "heart",
        "Heart",
        "  .-. .-.\n (   '   )\n  '.   .'\n    '.'",
    ),
    (
        "lgtm",
        "Looks good to me",
        "#     ###  ##### #   #\n#    #       #   ## ##\n#    #  ##   #   # # #\n####  ###    #   #   #",
    ),
    ("owl", "Owl", " ,_,\n(O,O)\n(   )\n-\"-\"-"),
    ("party", "Party", " \\o/  *\n  |  *\n / \\ *"),
    (
        "rocket",
        "Rocket",
        "   /\\\n  /  \\\n  |()|\n  |  |\n /|/\\|\\\n   **\n   *",
    ),
    (
        "shipit",
        "Ship it",
        "     |\\\n     | \\\n     |__\\\n  ____|_____\n  \\ o  o  o /\n~~~~~~~~~~~~~~",
    ),
    ("shrug", "Shrug", "\\_(o_o)_/"),
    ("sleepy", "Sleepy", "      z\n    z\n(-.-)"),
    (
        "star",
        "Star",
        "    /\\\n __/  \\__\n \\      /\n /  /\\  \\\n/__/  \\__\\",
    ),
    ("sun", "Sun", " \\ | /\n-- O --\n / | \\"),
    ("tableflip", "Table flip", "(/o_o)/  ~  |___|\n           /   \\"),
    ("thumbsup", "Thumbs up", "   _\n  ( |\n__| |___\n(___    |\n(___    |\n(____)__|"),
    ("unflip", "Table back", " ___\n|   |  \\(o_o\\)\n/   \\"),
    ("wave", "Wave", " o/\n/|\n/ \\"),
];
