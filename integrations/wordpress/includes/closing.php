<?php
/**
 * Closing comments in WordPress closes the post in the service (and reopening opens it), through
 * the moderation API with the stored token. The state the service last confirmed is kept in the
 * post's meta, so a change the service missed (it was down, no token yet) is sent again later.
 *
 * @package comments-service
 * @license GPL-2.0-or-later
 */

defined( 'ABSPATH' ) || exit;

/** Post meta: "1" when the service confirmed the post closed, "0" open, absent when never told. */
const CMSVC_CLOSED_META = '_comments_service_closed';
/** Seconds between two attempts to send a post's state the service missed. */
const CMSVC_RETRY_SECONDS = 5 * MINUTE_IN_SECONDS;
/**
 * Seconds between two attempts the service refused for good (an unknown site, a revoked token):
 * asking again every few minutes would change nothing until the settings do, and a change of
 * the settings sends it at the next chance anyway.
 */
const CMSVC_REFUSED_RETRY_SECONDS = DAY_IN_SECONDS;

/** Hook the closing in. */
function cmsvc_closing_hooks() {
	add_action( 'wp_insert_post', 'cmsvc_post_saved', 10, 2 );
}

/**
 * A post saved: if its comment setting is not the one the service confirmed (comments closed or
 * opened, or a post published with comments closed from the start, which no theme may ever ask
 * the service about), tell the service at once.
 *
 * @param int     $post_id The post.
 * @param WP_Post $post    The post as saved.
 */
function cmsvc_post_saved( $post_id, $post ) {
	cmsvc_sync_closed( $post, CMSVC_ADMIN_TIMEOUT, true );
}

/**
 * Send the post's comment setting to the service if the service has not confirmed it yet.
 *
 * @param WP_Post $post    The post.
 * @param int     $timeout Seconds to wait (a reader's page waits only briefly).
 * @param bool    $now     Try even if an attempt failed a moment ago.
 * @return bool|null True when sent, false when it failed, null when nothing was to be sent.
 */
function cmsvc_sync_closed( $post, $timeout = CMSVC_READ_TIMEOUT, $now = false ) {
	if ( ! cmsvc_handles( $post ) || ! cmsvc_has_token() || 'publish' !== $post->post_status ) {
		return null;
	}
	$wanted = 'closed' === $post->comment_status ? '1' : '0';
	$known  = (string) get_post_meta( $post->ID, CMSVC_CLOSED_META, true );
	if ( $known === $wanted || ( '' === $known && '0' === $wanted ) ) {
		return null; // Confirmed already, or open and never closed: nothing to tell.
	}
	// An attempt that failed waits before the next, unless the settings have changed since.
	$retry   = 'cmsvc_r_' . $post->ID;
	$against = cmsvc_settings_fingerprint();
	if ( ! $now && get_transient( $retry ) === $against ) {
		return null;
	}
	$facts  = cmsvc_post_facts( $post );
	$result = cmsvc_set_closed( $facts['key'], '1' === $wanted, $timeout, $facts );
	if ( is_wp_error( $result ) ) {
		set_transient( $retry, $against, cmsvc_refused_for_good( $result ) ? CMSVC_REFUSED_RETRY_SECONDS : CMSVC_RETRY_SECONDS );
		if ( is_admin() ) {
			set_transient( 'cmsvc_notice_' . get_current_user_id(), array( 'error', sprintf( /* translators: 1: post title, 2: closed or open, 3: the service's answer. */ __( 'The comments service was not told that comments on "%1$s" are %2$s (%3$s); it will be told when the post is next shown.', 'comments-service' ), wp_strip_all_tags( $post->post_title ), '1' === $wanted ? __( 'closed', 'comments-service' ) : __( 'open', 'comments-service' ), $result->get_error_message() ) ), 60 );
		}
		return false;
	}
	update_post_meta( $post->ID, CMSVC_CLOSED_META, $wanted );
	delete_transient( $retry );
	return true;
}

/**
 * Whether the service refused a request in a way asking again cannot change: a 4xx other than a
 * timeout (408) or a rate limit (429). A network error or a 5xx is worth another try soon.
 *
 * @param WP_Error $error What the client returned.
 * @return bool
 */
function cmsvc_refused_for_good( $error ) {
	$data   = $error->get_error_data();
	$status = is_array( $data ) && isset( $data['status'] ) ? (int) $data['status'] : 0;
	return $status >= 400 && $status < 500 && 408 !== $status && 429 !== $status;
}

/** What the client's requests depend on (the service, the site, the token), as one string. */
function cmsvc_settings_fingerprint() {
	$settings = cmsvc_settings();
	return md5( $settings['url'] . "\n" . $settings['site'] . "\n" . (string) get_option( CMSVC_TOKEN_OPTION, '' ) );
}
