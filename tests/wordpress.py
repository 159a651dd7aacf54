"""A real WordPress for the plugin's tests: Debian's ``wordpress`` package copied to a temporary
folder, a throwaway MariaDB database, the installer's own functions run through ``php``, and
``php -S`` serving it on an ephemeral loopback port. Nothing reaches the internet: WordPress is
told to block every request to another host than its own (the service runs on loopback too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WORDPRESS = Path("/usr/share/wordpress")
PLUGIN = Path(__file__).resolve().parents[1] / "integrations" / "wordpress"
PLUGIN_FILE = "comments-service/comments-service.php"
ADMIN = "admin"
ADMIN_PASSWORD = "correct-horse-wordpress"
MARIADB_SOCKET = Path("/run/mysqld/mysqld.sock")
# Debian packages the tier needs, and a file each one installs.
PACKAGES = {
    "wordpress": WORDPRESS / "wp-load.php",
    # A classic theme: its single.php calls comments_template(), as most blogs' themes do.
    "wordpress-theme-twentytwentyone": WORDPRESS / "wp-content/themes/twentytwentyone/style.css",
    "php-cli": Path("/usr/bin/php"),
    "php-mysql": Path("/usr/bin/php"),  # checked by its extension, below
    "mariadb-server": Path("/usr/sbin/mariadbd"),
}


def missing_packages() -> list[str]:
    missing = [name for name, path in PACKAGES.items() if not path.exists()]
    if "php-cli" not in missing:
        modules = subprocess.run(["php", "-m"], capture_output=True, text=True).stdout.split()
        if "mysqli" not in modules:
            missing.append("php-mysql")
    if "mariadb-server" not in missing and not MARIADB_SOCKET.exists():
        missing.append("mariadb-server (installed, but not running)")
    return sorted(set(missing))


def require_wordpress() -> None:
    """Skip where the packages are missing, except in CI (.ci/run installs them)."""
    missing = missing_packages()
    if missing and not os.environ.get("CI"):
        pytest.skip(
            "the WordPress tests need Debian's " + ", ".join(missing)
            + " (apt-get install wordpress wordpress-theme-twentytwentyone php-cli php-mysql"
            " mariadb-server; .ci/run does)"
        )  # fmt: skip
    assert not missing, f"CI must install {missing}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def mysql(statement: str) -> None:
    subprocess.run(
        ["mysql", "--protocol=socket", f"--socket={MARIADB_SOCKET}", "-uroot", "-e", statement],
        check=True,
        capture_output=True,
    )


@dataclasses.dataclass
class WordPress:
    root: Path
    url: str
    database: str

    def php(self, code: str) -> Any:
        """Run PHP inside this WordPress (what WP-CLI's ``wp eval`` does); returns what the code
        prints, decoded as JSON when it is JSON."""
        done = subprocess.run(
            ["php", str(self.root / "test-eval.php")],
            input=code,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout.strip()
        try:
            return json.loads(out)
        except ValueError:
            return out

    def dump(self) -> str:
        """Everything in WordPress's database, as SQL."""
        done = subprocess.run(
            ["mysqldump", "--protocol=socket", f"--socket={MARIADB_SOCKET}", "-uroot",
             "--skip-extended-insert", self.database],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout

    def log(self) -> str:
        path = self.root / "wp-content" / "debug.log"
        return path.read_text() if path.exists() else ""


WP_CONFIG = """<?php
define( 'DB_NAME', '{db}' );
define( 'DB_USER', 'root' );
define( 'DB_PASSWORD', '' );
define( 'DB_HOST', 'localhost:{socket}' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
{salts}
$table_prefix = 'wp_';
define( 'WP_HOME', '{url}' );
define( 'WP_SITEURL', '{url}' );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_DISPLAY', false );
define( 'WP_DEBUG_LOG', true );
define( 'DISABLE_WP_CRON', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_AUTO_UPDATE_CORE', false );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'COMMENTS_SERVICE_COUNT_SECONDS', 0 );
if ( ! defined( 'ABSPATH' ) ) {{
	define( 'ABSPATH', __DIR__ . '/' );
}}
require_once ABSPATH . 'wp-settings.php';
"""

# php -S: files that exist are served as they are; everything else is WordPress's index.php
# (pretty permalinks).
ROUTER = """<?php
$path = urldecode( (string) parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH ) );
if ( '/' !== $path && file_exists( __DIR__ . $path ) ) {
	return false;
}
$_SERVER['SCRIPT_NAME'] = '/index.php';
require __DIR__ . '/index.php';
"""

EVAL = """<?php
$_SERVER['HTTP_HOST']   = '127.0.0.1:{port}';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['SERVER_PORT'] = '{port}';
$_SERVER['REQUEST_URI'] = '/';
if ( getenv( 'TEST_WP_INSTALLING' ) ) {{
	define( 'WP_INSTALLING', true );
}}
require __DIR__ . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
eval( stream_get_contents( STDIN ) );
"""

INSTALL = f"""
wp_install( 'A test blog', '{ADMIN}', 'admin@example.org', false, '', '{ADMIN_PASSWORD}' );
global $wp_rewrite;
$wp_rewrite->set_permalink_structure( '/%year%/%monthnum%/%day%/%postname%/' );
$wp_rewrite->flush_rules( false );
switch_theme( 'twentytwentyone' );
echo 'installed';
"""


@contextlib.contextmanager
def wordpress(tmp: Path) -> Iterator[WordPress]:
    """A fresh WordPress with the plugin copied in (not yet active), served on loopback."""
    require_wordpress()
    root = tmp / "wordpress"
    shutil.copytree(WORDPRESS, root, symlinks=True)
    (root / "wp-config.php").unlink()
    shutil.copytree(PLUGIN, root / "wp-content" / "plugins" / "comments-service")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = f"wp_test_{secrets.token_hex(4)}"
    salts = "\n".join(
        f"define( '{name}', '{secrets.token_hex(32)}' );"
        for name in (
            "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
            "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT",
        )
    )  # fmt: skip
    (root / "wp-config.php").write_text(
        WP_CONFIG.format(db=database, socket=MARIADB_SOCKET, salts=salts, url=url)
    )
    (root / "test-router.php").write_text(ROUTER)
    (root / "test-eval.php").write_text(EVAL.format(port=port))
    mysql(f"CREATE DATABASE {database} CHARACTER SET utf8mb4")
    server = None
    try:
        site = WordPress(root, url, database)
        installing = subprocess.run(
            ["php", str(root / "test-eval.php")],
            input=INSTALL,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TEST_WP_INSTALLING": "1"},
        )
        assert installing.stdout.endswith("installed"), installing.stdout + installing.stderr
        server = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{port}", "-t", str(root), str(root / "test-router.php")],
            env={**os.environ, "PHP_CLI_SERVER_WORKERS": "3"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its workers are its children: stopped as one group
        )
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "php -S did not start"
            time.sleep(0.1)
        yield site
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        mysql(f"DROP DATABASE IF EXISTS {database}")
