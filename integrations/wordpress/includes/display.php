<?php
/**
 * What readers see: the service's thread in place of the theme's comments, counts from the
 * service in post lists, and comment feeds that lead to the service's Atom feeds. Nothing a
 * reader sends passes through WordPress, and the plugin stores nothing about readers.
 *
 * @package comments-service
 * @license GPL-2.0-or-later
 */

defined( 'ABSPATH' ) || exit;

/** Hook the display in. */
function cmsvc_display_hooks() {
	add_filter( 'comments_template', 'cmsvc_comments_template', 20 );
	add_filter( 'get_comments_number', 'cmsvc_comments_number', 10, 2 );
	add_filter( 'the_posts', 'cmsvc_prefetch_counts', 10, 2 );
	add_filter( 'post_comments_feed_link', 'cmsvc_post_feed_link' );
	add_filter( 'feed_link', 'cmsvc_site_feed_link', 10, 2 );
	add_action( 'template_redirect', 'cmsvc_redirect_comment_feeds' );
	add_filter( 'preprocess_comment', 'cmsvc_refuse_native_comment' );
	add_filter( 'rest_pre_insert_comment', 'cmsvc_refuse_rest_comment' );
	add_filter( 'xmlrpc_methods', 'cmsvc_without_xmlrpc_comments' );
	add_filter( 'pings_open', 'cmsvc_pings_open', 10, 2 );
}

/**
 * The theme's comments.php, replaced by the plugin's on posts and pages.
 *
 * @param string $template The theme's comment template.
 */
function cmsvc_comments_template( $template ) {
	$post = get_post();
	if ( ! $post || ! cmsvc_handles( $post ) || post_password_required( $post ) ) {
		return $template;
	}
	return CMSVC_DIR . '/templates/comments.php';
}

/**
 * What the embed needs to know of a post: its key, title, address and publication date.
 *
 * @param WP_Post $post The post.
 */
function cmsvc_post_facts( $post ) {
	return array(
		'key'       => cmsvc_post_key( $post ),
		'title'     => wp_strip_all_tags( $post->post_title ),
		'url'       => (string) get_permalink( $post ),
		'published' => (string) get_post_time( 'c', true, $post ),
	);
}

/**
 * The thread's address on the service, for the include, the iframe and the no-script link. It
 * carries the post's publication date, which the service puts in the form of a post's first
 * comment (automatic closing counts from it).
 *
 * @param array $facts cmsvc_post_facts().
 * @param bool  $page  The standalone page (iframe, link) rather than the fragment.
 */
function cmsvc_thread_url( $facts, $page = false ) {
	$query = array( 'post' => $facts['key'] );
	if ( $page ) {
		$query['page'] = '1';
	}
	$query['lang'] = cmsvc_language();
	if ( '' !== $facts['published'] ) {
		$query['published'] = $facts['published'];
	}
	return cmsvc_url( '/embed/' . cmsvc_site_path() . '/thread', $query );
}

/**
 * The service's thread fragment for the include, checked against the tags and attributes the
 * service's fragment uses (wp_kses), with the post's title and address filled into the form of
 * a post's first comment (as embed.js does when it renders the thread itself).
 *
 * @param array $facts cmsvc_post_facts().
 * @return string|null Safe HTML, or null when the service cannot be reached.
 */
function cmsvc_fragment( $facts ) {
	$html = cmsvc_cached_get( cmsvc_thread_url( $facts ) );
	if ( null === $html ) {
		return null;
	}
	$html = str_replace(
		array( '<input type="hidden" name="post_title" value="">', '<input type="hidden" name="post_url" value="">' ),
		array(
			'<input type="hidden" name="post_title" value="' . esc_attr( $facts['title'] ) . '">',
			'<input type="hidden" name="post_url" value="' . esc_attr( $facts['url'] ) . '">',
		),
		$html
	);
	return wp_kses( $html, cmsvc_fragment_tags() );
}

/** The tags and attributes of the service's thread fragment: nothing else gets through. */
function cmsvc_fragment_tags() {
	$common = array(
		'class'            => true,
		'id'               => true,
		'hidden'           => true,
		'lang'             => true,
		'role'             => true,
		'tabindex'         => true,
		'title'            => true,
		'aria-describedby' => true,
		'aria-hidden'      => true,
		'aria-invalid'     => true,
		'aria-label'       => true,
		'aria-labelledby'  => true,
		'aria-live'        => true,
		'data-*'           => true,
	);
	$tags   = array();
	foreach ( array( 'section', 'article', 'header', 'div', 'p', 'h2', 'h3', 'h4', 'ol', 'ul', 'li', 'span', 'strong', 'b', 'i', 'em', 'code', 'br', 'fieldset', 'legend', 'small' ) as $tag ) {
		$tags[ $tag ] = $common;
	}
	$tags['a']        = $common + array(
		'href' => true,
		'rel'  => true,
	);
	$tags['time']     = $common + array( 'datetime' => true );
	$tags['link']     = array(
		'rel'  => true,
		'href' => true,
	);
	$tags['form']     = $common + array(
		'method'     => true,
		'action'     => true,
		'novalidate' => true,
	);
	$tags['label']    = $common + array( 'for' => true );
	$tags['button']   = $common + array( 'type' => true );
	$field            = array(
		'name'         => true,
		'autocomplete' => true,
		'spellcheck'   => true,
		'maxlength'    => true,
		'required'     => true,
	);
	$tags['input']    = $common + $field + array(
		'type'    => true,
		'value'   => true,
		'checked' => true,
	);
	$tags['textarea'] = $common + $field + array( 'rows' => true );
	return $tags;
}

/**
 * A post's comment count, from the service.
 *
 * @param int|string $count   WordPress's count.
 * @param int        $post_id The post.
 */
function cmsvc_comments_number( $count, $post_id ) {
	if ( ! cmsvc_handles( $post_id ) ) {
		return $count;
	}
	$key    = cmsvc_post_key( $post_id );
	$counts = cmsvc_counts( array( $key ) );
	return isset( $counts[ $key ] ) ? $counts[ $key ] : $count;
}

/**
 * Ask for the counts of a whole list of posts at once, before the list is shown.
 *
 * @param WP_Post[] $posts The query's posts.
 * @param WP_Query  $query The query.
 */
function cmsvc_prefetch_counts( $posts, $query ) {
	if ( cmsvc_configured() && is_array( $posts ) && count( $posts ) > 1 && $query->is_main_query() ) {
		$keys = array();
		foreach ( $posts as $post ) {
			if ( $post instanceof WP_Post && cmsvc_handles( $post ) ) {
				$keys[] = cmsvc_post_key( $post );
			}
		}
		cmsvc_counts( $keys );
	}
	return $posts;
}

/**
 * A post's comment feed: the service's Atom feed of its approved comments. (The filter is given
 * only WordPress's address, which names the post.)
 *
 * @param string $url WordPress's feed address.
 */
function cmsvc_post_feed_link( $url ) {
	$post_id = url_to_postid( $url );
	$post_id = $post_id ? $post_id : get_the_ID();
	if ( ! $post_id || ! cmsvc_handles( $post_id ) ) {
		return $url;
	}
	return cmsvc_post_feed( $post_id );
}

/** The service's Atom feed of a post's approved comments. */
function cmsvc_post_feed( $post_id ) {
	return cmsvc_url( '/api/v1/sites/' . cmsvc_site_path() . '/feed.atom', array( 'post' => cmsvc_post_key( $post_id ) ) );
}

/**
 * The blog's comment feed: the service's site-wide Atom feed.
 *
 * @param string $url  WordPress's feed address.
 * @param string $feed Which feed.
 */
function cmsvc_site_feed_link( $url, $feed ) {
	if ( ! cmsvc_configured() || 0 !== strpos( (string) $feed, 'comments_' ) ) {
		return $url;
	}
	return cmsvc_url( '/api/v1/sites/' . cmsvc_site_path() . '/feed.atom' );
}

/** Requests for WordPress's own comment feeds go to the service's. */
function cmsvc_redirect_comment_feeds() {
	if ( ! cmsvc_configured() || ! is_comment_feed() ) {
		return;
	}
	if ( is_singular() && cmsvc_handles( get_queried_object_id() ) ) {
		$target = cmsvc_post_feed( get_queried_object_id() );
	} else {
		$target = cmsvc_url( '/api/v1/sites/' . cmsvc_site_path() . '/feed.atom' );
	}
	wp_redirect( $target, 302, 'Comments service' ); // phpcs:ignore WordPress.Security.SafeRedirect -- the service's address, set by an administrator.
	exit;
}

/**
 * Refuse a comment sent to WordPress itself (wp-comments-post.php, an app) once native comments
 * are off: it would land where no reader sees it.
 *
 * @param array $data The comment.
 */
function cmsvc_refuse_native_comment( $data ) {
	$settings = cmsvc_settings();
	if ( $settings['native_off'] && ! empty( $data['comment_post_ID'] ) && cmsvc_handles( (int) $data['comment_post_ID'] ) ) {
		wp_die(
			esc_html__( 'Comments on this blog are taken by its comments service: go back to the post and use the form there.', 'comments-service' ),
			esc_html__( 'Comments are handled elsewhere', 'comments-service' ),
			array(
				'response'  => 403,
				'back_link' => true,
			)
		);
	}
	return $data;
}

/**
 * Without native comments, the REST API takes no new comment either.
 *
 * @param array|WP_Error $prepared The comment about to be added.
 */
function cmsvc_refuse_rest_comment( $prepared ) {
	$settings = cmsvc_settings();
	if ( $settings['native_off'] && is_array( $prepared ) && ! empty( $prepared['comment_post_ID'] ) && cmsvc_handles( (int) $prepared['comment_post_ID'] ) ) {
		return new WP_Error( 'cmsvc_comments_elsewhere', __( 'Comments on this blog are taken by its comments service.', 'comments-service' ), array( 'status' => 403 ) );
	}
	return $prepared;
}

/**
 * Without native comments, XML-RPC takes no new comment.
 *
 * @param array $methods The XML-RPC methods.
 */
function cmsvc_without_xmlrpc_comments( $methods ) {
	$settings = cmsvc_settings();
	if ( $settings['native_off'] ) {
		unset( $methods['wp.newComment'] );
	}
	return $methods;
}

/**
 * Pingbacks and trackbacks are comments too: off with native comments.
 *
 * @param bool $open    WordPress's answer.
 * @param int  $post_id The post.
 */
function cmsvc_pings_open( $open, $post_id ) {
	$settings = cmsvc_settings();
	return $settings['native_off'] && cmsvc_handles( $post_id ) ? false : $open;
}
