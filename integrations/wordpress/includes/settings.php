<?php
/**
 * The plugin's settings and the few facts derived from them (post keys, languages).
 *
 * @package comments-service
 * @license GPL-2.0-or-later
 */

defined( 'ABSPATH' ) || exit;

/** The embed modes: a server-side include (the default), the script, or an iframe. */
const CMSVC_MODES = array( 'include', 'script', 'iframe' );

/**
 * The settings, with defaults. The API token is kept in an option of its own (not autoloaded)
 * and never returned here: only the client reads it.
 *
 * @return array{url: string, site: string, mode: string, native_off: bool}
 */
function cmsvc_settings() {
	$saved = get_option( CMSVC_OPTION, array() );
	$saved = is_array( $saved ) ? $saved : array();
	return array(
		'url'        => isset( $saved['url'] ) ? (string) $saved['url'] : '',
		'site'       => isset( $saved['site'] ) ? (string) $saved['site'] : '',
		'mode'       => isset( $saved['mode'] ) && in_array( $saved['mode'], CMSVC_MODES, true ) ? $saved['mode'] : 'include',
		'native_off' => ! empty( $saved['native_off'] ),
	);
}

/** Whether the service's address and the site are set, so the embed replaces the comments. */
function cmsvc_configured() {
	$settings = cmsvc_settings();
	return '' !== $settings['url'] && '' !== $settings['site'];
}

/** Whether an API token is stored (it is never shown). */
function cmsvc_has_token() {
	return '' !== (string) get_option( CMSVC_TOKEN_OPTION, '' );
}

/**
 * Check and clean the settings form (register_setting's sanitize callback). A token typed in
 * is stored apart and the field is never filled again; an empty field keeps the stored token.
 *
 * @param mixed $input What the form sent.
 * @return array The settings to store.
 */
function cmsvc_sanitize_settings( $input ) {
	$input    = is_array( $input ) ? $input : array();
	$previous = cmsvc_settings();
	$url      = isset( $input['url'] ) ? esc_url_raw( trim( (string) $input['url'] ), array( 'http', 'https' ) ) : '';
	$site     = isset( $input['site'] ) ? strtolower( trim( (string) $input['site'] ) ) : '';
	if ( '' !== $site && ! preg_match( '/^[a-z0-9][a-z0-9_-]{0,63}$/', $site ) ) {
		add_settings_error( CMSVC_OPTION, 'site', __( 'The site slug may have letters, digits, hyphens and underscores only.', 'comments-service' ) );
		$site = $previous['site'];
	}
	$mode = isset( $input['mode'] ) && in_array( $input['mode'], CMSVC_MODES, true ) ? $input['mode'] : 'include';
	if ( ! empty( $input['forget_token'] ) ) {
		delete_option( CMSVC_TOKEN_OPTION );
	} elseif ( isset( $input['token'] ) && '' !== trim( (string) $input['token'] ) ) {
		update_option( CMSVC_TOKEN_OPTION, sanitize_text_field( (string) $input['token'] ), false );
	}
	return array(
		'url'        => untrailingslashit( $url ),
		'site'       => $site,
		'mode'       => $mode,
		// Set by the plugin's own buttons (Move existing comments), not by this form.
		'native_off' => isset( $input['native_off'] ) ? (bool) $input['native_off'] : $previous['native_off'],
	);
}

/**
 * A post's key in the service: its permalink's path, with the query if it has one (a blog with
 * plain permalinks has "/?p=123"). The WordPress import keys posts the same way.
 *
 * @param WP_Post|int $post The post.
 */
function cmsvc_post_key( $post ) {
	$parts = wp_parse_url( (string) get_permalink( $post ) );
	$key   = isset( $parts['path'] ) && '' !== $parts['path'] ? $parts['path'] : '/';
	if ( ! empty( $parts['query'] ) ) {
		$key .= '?' . $parts['query'];
	}
	return $key;
}

/** The embed's language: Welsh for a Welsh blog, English otherwise (what the service speaks). */
function cmsvc_language() {
	return 0 === strpos( get_locale(), 'cy' ) ? 'cy' : 'en';
}

/** Whether the post shows the service's thread: posts and pages, once the plugin is set up. */
function cmsvc_handles( $post ) {
	$post = get_post( $post );
	return $post && cmsvc_configured() && in_array( $post->post_type, array( 'post', 'page' ), true );
}
