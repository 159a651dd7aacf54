<?php
/**
 * Everything the plugin asks of the service, over HTTP with short timeouts. Reads that a reader's
 * page waits for are cached in transients and revalidated with the service's ETags.
 *
 * @package comments-service
 * @license GPL-2.0-or-later
 */

defined( 'ABSPATH' ) || exit;

/** Seconds a reader's page waits for the service before showing "comments are unavailable". */
const CMSVC_READ_TIMEOUT = 3;
/** Seconds a moderation call (closing a post, the connection test) may take. */
const CMSVC_ADMIN_TIMEOUT = 10;
/** Seconds the move of the existing comments may take (the service imports in one go). */
const CMSVC_IMPORT_TIMEOUT = 300;
/**
 * A kept fragment is fetched whole again after this long, even while its ETag still matches:
 * its form carries the service's time-trap token, which expires after a day.
 */
const CMSVC_REFETCH_AFTER = 6 * HOUR_IN_SECONDS;
/**
 * Seconds a comment count is kept before the service is asked again; wp-config.php may set
 * COMMENTS_SERVICE_COUNT_SECONDS (0: ask every time).
 */
define( 'CMSVC_COUNT_SECONDS', defined( 'COMMENTS_SERVICE_COUNT_SECONDS' ) ? (int) COMMENTS_SERVICE_COUNT_SECONDS : 60 );

/**
 * An address on the service.
 *
 * @param string $path  Path, starting with "/".
 * @param array  $query Query parameters; a list value repeats the name.
 */
function cmsvc_url( $path, $query = array() ) {
	$settings = cmsvc_settings();
	$pairs    = array();
	foreach ( $query as $name => $value ) {
		foreach ( (array) $value as $one ) {
			$pairs[] = rawurlencode( $name ) . '=' . rawurlencode( (string) $one );
		}
	}
	return $settings['url'] . $path . ( $pairs ? '?' . implode( '&', $pairs ) : '' );
}

/** The site's path on the service, its slug encoded. */
function cmsvc_site_path() {
	$settings = cmsvc_settings();
	return rawurlencode( $settings['site'] );
}

/** The Authorization header for the moderation API, from the stored token. */
function cmsvc_auth_headers() {
	return array( 'Authorization' => 'Bearer ' . (string) get_option( CMSVC_TOKEN_OPTION, '' ) );
}

/** Seconds a response may be reused, from its Cache-Control max-age (0 when it has none). */
function cmsvc_max_age( $response ) {
	$control = (string) wp_remote_retrieve_header( $response, 'cache-control' );
	return preg_match( '/(?:^|,)\s*max-age=(\d{1,6})/', $control, $found ) ? (int) $found[1] : 0;
}

/**
 * A public read (the thread fragment), cached in a transient with its ETag: reused while fresh
 * (the service's max-age), then revalidated with If-None-Match, so an unchanged thread costs a
 * 304 and a moderation shows as soon as the service's ETag changes.
 *
 * @param string $url The fragment's address.
 * @return string|null The fragment's HTML, or null when the service cannot be reached.
 */
function cmsvc_cached_get( $url ) {
	$key  = 'cmsvc_f_' . md5( $url );
	$kept = get_transient( $key );
	$now  = time();
	$kept = is_array( $kept ) && $now - $kept['fetched'] < CMSVC_REFETCH_AFTER ? $kept : null;
	if ( $kept && $now - $kept['checked'] < $kept['fresh_for'] ) {
		return $kept['body'];
	}
	$headers  = $kept ? array( 'If-None-Match' => $kept['etag'] ) : array();
	$response = wp_remote_get(
		$url,
		array(
			'timeout'     => CMSVC_READ_TIMEOUT,
			'redirection' => 0,
			'headers'     => $headers,
		)
	);
	if ( is_wp_error( $response ) ) {
		return null;
	}
	$status = (int) wp_remote_retrieve_response_code( $response );
	if ( 304 === $status && $kept ) {
		$kept['checked']   = $now;
		$kept['fresh_for'] = cmsvc_max_age( $response );
		set_transient( $key, $kept, DAY_IN_SECONDS );
		return $kept['body'];
	}
	if ( 200 !== $status ) {
		return null;
	}
	$body = wp_remote_retrieve_body( $response );
	$etag = (string) wp_remote_retrieve_header( $response, 'etag' );
	if ( '' !== $etag ) {
		set_transient(
			$key,
			array(
				'etag'      => $etag,
				'body'      => $body,
				'fetched'   => $now,
				'checked'   => $now,
				'fresh_for' => cmsvc_max_age( $response ),
			),
			DAY_IN_SECONDS
		);
	}
	return $body;
}

/**
 * Approved comment counts of posts, from the counts API, 100 keys a request, each kept for a
 * minute: a post list asks once for the whole page.
 *
 * @param string[] $keys Post keys.
 * @return array<string, int> Key => count, for the keys the service answered.
 */
function cmsvc_counts( $keys ) {
	static $known = array();
	$counts  = array();
	$missing = array();
	foreach ( array_unique( $keys ) as $key ) {
		if ( isset( $known[ $key ] ) ) {
			$counts[ $key ] = $known[ $key ];
			continue;
		}
		$kept = CMSVC_COUNT_SECONDS > 0 ? get_transient( 'cmsvc_c_' . md5( cmsvc_site_path() . $key ) ) : false;
		if ( false !== $kept ) {
			$counts[ $key ] = (int) $kept;
			$known[ $key ]  = (int) $kept;
		} else {
			$missing[] = $key;
		}
	}
	foreach ( array_chunk( $missing, 100 ) as $chunk ) {
		$response = wp_remote_get(
			cmsvc_url( '/api/v1/sites/' . cmsvc_site_path() . '/counts', array( 'post' => $chunk ) ),
			array(
				'timeout'     => CMSVC_READ_TIMEOUT,
				'redirection' => 0,
			)
		);
		if ( is_wp_error( $response ) || 200 !== (int) wp_remote_retrieve_response_code( $response ) ) {
			break; // The service is away: the page shows WordPress's own counts.
		}
		$data = json_decode( wp_remote_retrieve_body( $response ), true );
		if ( ! is_array( $data ) || ! isset( $data['counts'] ) || ! is_array( $data['counts'] ) ) {
			break;
		}
		foreach ( $data['counts'] as $key => $count ) {
			$counts[ $key ] = (int) $count;
			$known[ $key ]  = (int) $count;
			if ( CMSVC_COUNT_SECONDS > 0 ) {
				set_transient( 'cmsvc_c_' . md5( cmsvc_site_path() . $key ), (int) $count, CMSVC_COUNT_SECONDS );
			}
		}
	}
	return $counts;
}

/**
 * Tell the service a post's comments are closed or open again (the moderation API, with the
 * stored token). The post's permalink and title go with it: a post nobody has commented on yet
 * is unknown to the service, which creates it from them (otherwise it would answer 404 for good).
 *
 * @param string $key     The post's key.
 * @param bool   $closed  Closed (true) or open.
 * @param int    $timeout Seconds to wait.
 * @param array  $facts   cmsvc_post_facts() of the post (its url and title), if known.
 * @return true|WP_Error
 */
function cmsvc_set_closed( $key, $closed, $timeout = CMSVC_ADMIN_TIMEOUT, $facts = array() ) {
	$body = array( 'closed' => (bool) $closed );
	if ( ! empty( $facts['url'] ) ) {
		$body['url'] = (string) $facts['url'];
		// One line of at most 300 characters, as the service takes a title.
		$title = trim( (string) preg_replace( '/[\x00-\x1f\x7f]+/', ' ', (string) $facts['title'] ) );
		if ( '' !== $title ) {
			$body['title'] = function_exists( 'mb_substr' ) ? mb_substr( $title, 0, 300 ) : substr( $title, 0, 300 );
		}
	}
	$response = wp_remote_request(
		cmsvc_url( '/api/v1/moderation/sites/' . cmsvc_site_path() . '/posts', array( 'post' => $key ) ),
		array(
			'method'      => 'PATCH',
			'timeout'     => $timeout,
			'redirection' => 0,
			'headers'     => cmsvc_auth_headers() + array( 'Content-Type' => 'application/json' ),
			'body'        => wp_json_encode( $body ),
		)
	);
	return cmsvc_json_result( $response );
}

/**
 * Send a WordPress export (WXR) to the service's import endpoint.
 *
 * @param string $wxr The export.
 * @return array|WP_Error The service's report.
 */
function cmsvc_import( $wxr ) {
	$response = wp_remote_post(
		cmsvc_url( '/api/v1/moderation/sites/' . cmsvc_site_path() . '/imports' ),
		array(
			'timeout'     => CMSVC_IMPORT_TIMEOUT,
			'redirection' => 0,
			'headers'     => cmsvc_auth_headers() + array( 'Content-Type' => 'application/xml' ),
			'body'        => $wxr,
		)
	);
	return cmsvc_json_result( $response );
}

/**
 * What the connection test found: whether the service answers, knows the site, lets this blog's
 * origin embed and post, and takes the stored token.
 *
 * @return array{ok: bool, lines: string[]}
 */
function cmsvc_check_connection() {
	$origin = cmsvc_origin( home_url( '/' ) );
	$lines  = array();
	$ok     = true;
	$response = wp_remote_get(
		cmsvc_url( '/api/v1/sites/' . cmsvc_site_path() . '/counts', array( 'post' => '/' ) ),
		array(
			'timeout'     => CMSVC_ADMIN_TIMEOUT,
			'redirection' => 0,
			'headers'     => array( 'Origin' => $origin ),
		)
	);
	if ( is_wp_error( $response ) ) {
		/* translators: %s: the error WordPress met. */
		return array( 'ok' => false, 'lines' => array( sprintf( __( 'The service did not answer: %s', 'comments-service' ), $response->get_error_message() ) ) );
	}
	$status = (int) wp_remote_retrieve_response_code( $response );
	if ( 404 === $status ) {
		return array( 'ok' => false, 'lines' => array( __( 'The service answers, but has no site with this slug.', 'comments-service' ) ) );
	}
	if ( 200 !== $status ) {
		/* translators: %d: an HTTP status code. */
		return array( 'ok' => false, 'lines' => array( sprintf( __( 'The service answered with status %d.', 'comments-service' ), $status ) ) );
	}
	$lines[] = __( 'The service answers and the site exists.', 'comments-service' );
	if ( wp_remote_retrieve_header( $response, 'access-control-allow-origin' ) === $origin ) {
		/* translators: %s: this blog's origin, e.g. https://blog.example.org */
		$lines[] = sprintf( __( 'This blog\'s origin (%s) is allowed.', 'comments-service' ), $origin );
	} else {
		$ok = false;
		/* translators: %s: this blog's origin, e.g. https://blog.example.org */
		$lines[] = sprintf( __( 'This blog\'s origin (%s) is not one of the site\'s origins: add it in the service, or comments will be refused.', 'comments-service' ), $origin );
	}
	if ( ! cmsvc_has_token() ) {
		$lines[] = __( 'No API token is stored: closing comments and moving existing comments need one.', 'comments-service' );
		return array( 'ok' => $ok, 'lines' => $lines );
	}
	$me = cmsvc_json_result(
		wp_remote_get(
			cmsvc_url( '/api/v1/moderation/me' ),
			array(
				'timeout'     => CMSVC_ADMIN_TIMEOUT,
				'redirection' => 0,
				'headers'     => cmsvc_auth_headers(),
			)
		)
	);
	if ( is_wp_error( $me ) ) {
		$ok = false;
		/* translators: %s: the service's answer. */
		$lines[] = sprintf( __( 'The API token was refused: %s', 'comments-service' ), $me->get_error_message() );
	} elseif ( isset( $me['role'] ) && 'admin' === $me['role'] ) {
		/* translators: %s: the moderator the token acts as. */
		$lines[] = sprintf( __( 'The API token works (an administrator, %s).', 'comments-service' ), isset( $me['login'] ) ? (string) $me['login'] : '' );
	} else {
		/* translators: %s: the moderator the token acts as. */
		$lines[] = sprintf( __( 'The API token works (%s), but moving existing comments needs an administrator\'s token.', 'comments-service' ), isset( $me['login'] ) ? (string) $me['login'] : '' );
	}
	return array( 'ok' => $ok, 'lines' => $lines );
}

/** The origin of an address: scheme, host and port (if any). */
function cmsvc_origin( $url ) {
	$parts = wp_parse_url( $url );
	$port  = isset( $parts['port'] ) ? ':' . $parts['port'] : '';
	return ( isset( $parts['scheme'] ) ? $parts['scheme'] : 'https' ) . '://' . ( isset( $parts['host'] ) ? $parts['host'] : '' ) . $port;
}

/**
 * A moderation API response as data, or the service's error message.
 *
 * @param array|WP_Error $response What wp_remote_* returned.
 * @return array|WP_Error
 */
function cmsvc_json_result( $response ) {
	if ( is_wp_error( $response ) ) {
		return $response;
	}
	$status = (int) wp_remote_retrieve_response_code( $response );
	$data   = json_decode( wp_remote_retrieve_body( $response ), true );
	if ( $status >= 200 && $status < 300 && is_array( $data ) ) {
		return $data;
	}
	$message = is_array( $data ) && isset( $data['error']['message'] ) ? (string) $data['error']['message'] : '';
	/* translators: 1: an HTTP status code, 2: the service's message. */
	return new WP_Error( 'cmsvc_http', trim( sprintf( __( 'status %1$d. %2$s', 'comments-service' ), $status, $message ) ), array( 'status' => $status ) );
}
