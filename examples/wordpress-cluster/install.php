<?php
/* Install WordPress into the cluster's `wordpress` database from the command line (no HTTP round trip),
 * and activate the example theme. Run by run.sh with the environment of front end 1:
 *   MARMOT_WP_DB_HOST=127.0.0.1:PORT MARMOT_WP_URL=http://127.0.0.1:PORT \
 *     php install.php SITE_DIR TITLE ADMIN_USER ADMIN_PASSWORD ADMIN_EMAIL
 * Prints "installed" or "already installed"; exits non-zero when the installer fails. */
if ($argc !== 6) {
    fwrite(STDERR, "usage: php install.php SITE_DIR TITLE ADMIN_USER ADMIN_PASSWORD ADMIN_EMAIL\n");
    exit(2);
}
[, $site, $title, $user, $password, $email] = $argv;
$url = parse_url(getenv('MARMOT_WP_URL'));
$_SERVER['HTTP_HOST'] = $url['host'] . (isset($url['port']) ? ':' . $url['port'] : '');
$_SERVER['REQUEST_URI'] = '/';
define('WP_INSTALLING', true);
require $site . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
if (is_blog_installed()) {
    echo "already installed\n";
    exit(0);
}
$result = wp_install($title, $user, $email, false, '', wp_slash($password));
if (empty($result['user_id'])) {
    fwrite(STDERR, "WordPress install failed\n");
    exit(1);
}
switch_theme('marmot-example');
update_option('permalink_structure', ''); // ?p=ID links: PHP's built-in server has no rewrite rules
echo "installed\n";
