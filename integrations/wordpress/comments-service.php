<?php
/**
 * Plugin Name:       Comments service
 * Description:       Replaces the blog's native comments with a self-hosted comment moderation service: threads and the form from the service (readable and usable without JavaScript), counts and feeds from it, post closing sent to it, and a one-click move of the existing comments.
 * Version:           1.0.0
 * Requires at least: 6.1
 * Requires PHP:      8.1
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       comments-service
 *
 * Copyright the moderation service's authors.
 *
 * This program is free software; you can redistribute it and/or modify it under the terms of the
 * GNU General Public License as published by the Free Software Foundation; either version 2 of the
 * License, or (at your option) any later version. This program is distributed in the hope that it
 * will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of MERCHANTABILITY
 * or FITNESS FOR A PARTICULAR PURPOSE. See the GNU General Public License for more details.
 */

defined( 'ABSPATH' ) || exit;

define( 'CMSVC_DIR', __DIR__ );
define( 'CMSVC_OPTION', 'comments_service' );
define( 'CMSVC_TOKEN_OPTION', 'comments_service_token' );

require_once CMSVC_DIR . '/includes/settings.php';
require_once CMSVC_DIR . '/includes/client.php';
require_once CMSVC_DIR . '/includes/display.php';
require_once CMSVC_DIR . '/includes/closing.php';
require_once CMSVC_DIR . '/includes/admin.php';

cmsvc_display_hooks();
cmsvc_closing_hooks();
if ( is_admin() ) {
	cmsvc_admin_hooks();
}
