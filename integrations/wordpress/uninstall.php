<?php
/**
 * Deleting the plugin removes its settings, its stored token and its caches. WordPress's own
 * comments were never changed, and the comments in the service stay there.
 *
 * @package comments-service
 * @license GPL-2.0-or-later
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

delete_option( 'comments_service' );
delete_option( 'comments_service_token' );
delete_post_meta_by_key( '_comments_service_closed' );
global $wpdb;
$wpdb->query( "DELETE FROM {$wpdb->options} WHERE option_name LIKE '\\_transient\\_cmsvc\\_%' OR option_name LIKE '\\_transient\\_timeout\\_cmsvc\\_%'" ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
