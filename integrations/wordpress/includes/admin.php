<?php
/**
 * Settings → Comments service: the service's address, the site, the embed mode and the API
 * token (stored, never shown again); a connection test; and "Move existing comments", which
 * sends the blog's comments (a WordPress export) to the service's import and then turns
 * WordPress's own comment intake off. Every action checks a nonce and the manage_options
 * capability.
 *
 * @package comments-service
 * @license GPL-2.0-or-later
 */

defined( 'ABSPATH' ) || exit;

/** Hook the admin pages in. */
function cmsvc_admin_hooks() {
	add_action( 'admin_menu', 'cmsvc_admin_menu' );
	add_action( 'admin_init', 'cmsvc_register_settings' );
	add_action( 'admin_post_cmsvc_test', 'cmsvc_handle_test' );
	add_action( 'admin_post_cmsvc_move', 'cmsvc_handle_move' );
	add_action( 'admin_post_cmsvc_native', 'cmsvc_handle_native' );
	add_action( 'admin_notices', 'cmsvc_admin_notice' );
}

/** The page under Settings. */
function cmsvc_admin_menu() {
	add_options_page(
		__( 'Comments service', 'comments-service' ),
		__( 'Comments service', 'comments-service' ),
		'manage_options',
		'comments-service',
		'cmsvc_settings_page'
	);
}

/** The settings, through the Settings API (its own nonce and capability check). */
function cmsvc_register_settings() {
	register_setting(
		'comments_service',
		CMSVC_OPTION,
		array(
			'type'              => 'array',
			'sanitize_callback' => 'cmsvc_sanitize_settings',
			'show_in_rest'      => false,
		)
	);
}

/** A message for the current user's next admin page. */
function cmsvc_notify( $kind, $lines ) {
	set_transient( 'cmsvc_notice_' . get_current_user_id(), array( $kind, (array) $lines ), 5 * MINUTE_IN_SECONDS );
}

/** Show (once) what the last action found. */
function cmsvc_admin_notice() {
	$key    = 'cmsvc_notice_' . get_current_user_id();
	$notice = get_transient( $key );
	if ( ! is_array( $notice ) || ! current_user_can( 'manage_options' ) ) {
		return;
	}
	delete_transient( $key );
	$kind = 'success' === $notice[0] ? 'success' : ( 'warning' === $notice[0] ? 'warning' : 'error' );
	echo '<div class="notice notice-' . esc_attr( $kind ) . ' cmsvc-notice" role="status">';
	foreach ( (array) $notice[1] as $line ) {
		echo '<p>' . esc_html( $line ) . '</p>';
	}
	echo '</div>';
}

/** Stop unless the user manages options and the form's nonce is right. */
function cmsvc_check_request( $action ) {
	if ( ! current_user_can( 'manage_options' ) ) {
		wp_die( esc_html__( 'You are not allowed to do this.', 'comments-service' ), '', array( 'response' => 403 ) );
	}
	check_admin_referer( $action );
}

/** Back to the settings page. */
function cmsvc_back() {
	wp_safe_redirect( admin_url( 'options-general.php?page=comments-service' ) );
	exit;
}

/** The connection test button. */
function cmsvc_handle_test() {
	cmsvc_check_request( 'cmsvc_test' );
	if ( ! cmsvc_configured() ) {
		cmsvc_notify( 'error', __( 'Enter the service\'s address and the site first.', 'comments-service' ) );
		cmsvc_back();
	}
	$found = cmsvc_check_connection();
	cmsvc_notify( $found['ok'] ? 'success' : 'error', $found['lines'] );
	cmsvc_back();
}

/** The "Move existing comments" button: export, import into the service, native comments off. */
function cmsvc_handle_move() {
	cmsvc_check_request( 'cmsvc_move' );
	if ( ! cmsvc_configured() || ! cmsvc_has_token() ) {
		cmsvc_notify( 'error', __( 'Enter the service\'s address, the site and an administrator\'s API token first.', 'comments-service' ) );
		cmsvc_back();
	}
	$report = cmsvc_import( cmsvc_export() );
	if ( is_wp_error( $report ) ) {
		/* translators: %s: the service's answer. */
		cmsvc_notify( 'error', sprintf( __( 'The comments were not moved: %s Nothing was imported; WordPress\'s comments are unchanged.', 'comments-service' ), $report->get_error_message() ) );
		cmsvc_back();
	}
	$settings               = cmsvc_settings();
	$settings['native_off'] = true;
	update_option( CMSVC_OPTION, $settings );
	cmsvc_notify( 'success', cmsvc_report_lines( $report ) );
	cmsvc_back();
}

/** Turn WordPress's own comment intake back on (or off) by hand. */
function cmsvc_handle_native() {
	cmsvc_check_request( 'cmsvc_native' );
	$settings               = cmsvc_settings();
	$settings['native_off'] = ! empty( $_POST['native_off'] ); // phpcs:ignore WordPress.Security.NonceVerification -- checked in cmsvc_check_request().
	update_option( CMSVC_OPTION, $settings );
	cmsvc_back();
}

/**
 * The blog's posts, pages and comments as a WordPress export (WXR): what Tools → Export writes.
 * Spam is left out by WordPress itself; pending, approved and trashed comments go.
 */
function cmsvc_export() {
	require_once ABSPATH . 'wp-admin/includes/export.php';
	ob_start();
	export_wp( array( 'content' => 'all' ) );
	$wxr = (string) ob_get_clean();
	// export_wp() prepares a download; this request answers with a redirect instead.
	header_remove( 'Content-Description' );
	header_remove( 'Content-Disposition' );
	header_remove( 'Content-Type' );
	return $wxr;
}

/**
 * The service's import report in words.
 *
 * @param array $report The import endpoint's answer.
 * @return string[]
 */
function cmsvc_report_lines( $report ) {
	$lines = array(
		sprintf(
			/* translators: 1: comments imported, 2: posts added. */
			__( 'Moved %1$d comments and %2$d posts to the comments service. WordPress no longer takes comments itself; its copies are kept.', 'comments-service' ),
			isset( $report['imported'] ) ? (int) $report['imported'] : 0,
			isset( $report['posts_added'] ) ? (int) $report['posts_added'] : 0
		),
	);
	foreach ( array( 'skipped' => __( 'Skipped', 'comments-service' ), 'failed' => __( 'Failed', 'comments-service' ) ) as $field => $title ) {
		if ( empty( $report[ $field ] ) || ! is_array( $report[ $field ] ) ) {
			continue;
		}
		foreach ( $report[ $field ] as $reason => $count ) {
			/* translators: 1: Skipped or Failed, 2: how many, 3: why. */
			$lines[] = sprintf( __( '%1$s %2$d: %3$s', 'comments-service' ), $title, (int) $count, (string) $reason );
		}
	}
	return $lines;
}

/** Settings → Comments service. */
function cmsvc_settings_page() {
	if ( ! current_user_can( 'manage_options' ) ) {
		return;
	}
	$settings = cmsvc_settings();
	$modes    = array(
		'include' => __( 'Server-side include (works without JavaScript)', 'comments-service' ),
		'script'  => __( 'Script (embed.js)', 'comments-service' ),
		'iframe'  => __( 'Iframe', 'comments-service' ),
	);
	?>
	<div class="wrap">
		<h1><?php esc_html_e( 'Comments service', 'comments-service' ); ?></h1>
		<form method="post" action="<?php echo esc_url( admin_url( 'options.php' ) ); ?>">
			<?php settings_fields( 'comments_service' ); ?>
			<table class="form-table" role="presentation">
				<tr>
					<th scope="row"><label for="cmsvc-url"><?php esc_html_e( 'Service address', 'comments-service' ); ?></label></th>
					<td><input type="url" class="regular-text" id="cmsvc-url" name="<?php echo esc_attr( CMSVC_OPTION ); ?>[url]" value="<?php echo esc_attr( $settings['url'] ); ?>" placeholder="https://comments.example.org">
					<p class="description"><?php esc_html_e( 'Where the comments service is reached.', 'comments-service' ); ?></p></td>
				</tr>
				<tr>
					<th scope="row"><label for="cmsvc-site"><?php esc_html_e( 'Site', 'comments-service' ); ?></label></th>
					<td><input type="text" class="regular-text" id="cmsvc-site" name="<?php echo esc_attr( CMSVC_OPTION ); ?>[site]" value="<?php echo esc_attr( $settings['site'] ); ?>">
					<p class="description"><?php esc_html_e( 'The site\'s slug in the service (moderation site add SLUG).', 'comments-service' ); ?></p></td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Embed', 'comments-service' ); ?></th>
					<td><fieldset><legend class="screen-reader-text"><?php esc_html_e( 'Embed', 'comments-service' ); ?></legend>
					<?php foreach ( $modes as $mode => $label ) : ?>
						<label><input type="radio" name="<?php echo esc_attr( CMSVC_OPTION ); ?>[mode]" value="<?php echo esc_attr( $mode ); ?>" <?php checked( $settings['mode'], $mode ); ?>> <?php echo esc_html( $label ); ?></label><br>
					<?php endforeach; ?>
					</fieldset></td>
				</tr>
				<tr>
					<th scope="row"><label for="cmsvc-token"><?php esc_html_e( 'API token', 'comments-service' ); ?></label></th>
					<td><input type="password" class="regular-text" id="cmsvc-token" name="<?php echo esc_attr( CMSVC_OPTION ); ?>[token]" value="" autocomplete="off" aria-describedby="cmsvc-token-description">
					<p class="description" id="cmsvc-token-description">
					<?php
					if ( cmsvc_has_token() ) {
						esc_html_e( 'A token is stored; it is never shown. Type a new one to replace it.', 'comments-service' );
					} else {
						esc_html_e( 'A moderation API token of the service (an administrator\'s, to move existing comments). Needed to close posts and to move comments.', 'comments-service' );
					}
					?>
					</p>
					<?php if ( cmsvc_has_token() ) : ?>
						<label><input type="checkbox" name="<?php echo esc_attr( CMSVC_OPTION ); ?>[forget_token]" value="1"> <?php esc_html_e( 'Forget the stored token', 'comments-service' ); ?></label>
					<?php endif; ?>
					</td>
				</tr>
			</table>
			<?php submit_button(); ?>
		</form>

		<h2><?php esc_html_e( 'Test the connection', 'comments-service' ); ?></h2>
		<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
			<input type="hidden" name="action" value="cmsvc_test">
			<?php wp_nonce_field( 'cmsvc_test' ); ?>
			<p><?php esc_html_e( 'Asks the service whether the site exists, whether this blog\'s origin may embed and post, and whether the token works.', 'comments-service' ); ?></p>
			<?php submit_button( __( 'Test the connection', 'comments-service' ), 'secondary', 'cmsvc-test', false ); ?>
		</form>

		<h2><?php esc_html_e( 'Existing comments', 'comments-service' ); ?></h2>
		<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
			<input type="hidden" name="action" value="cmsvc_move">
			<?php wp_nonce_field( 'cmsvc_move' ); ?>
			<p><?php esc_html_e( 'Copies every comment of this blog (approved, waiting for moderation, with their replies) to the service, then stops WordPress taking comments itself. WordPress keeps its copies. Pressing it again copies only comments not copied before.', 'comments-service' ); ?></p>
			<?php submit_button( __( 'Move existing comments', 'comments-service' ), 'primary', 'cmsvc-move', false ); ?>
		</form>
		<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
			<input type="hidden" name="action" value="cmsvc_native">
			<?php wp_nonce_field( 'cmsvc_native' ); ?>
			<p><label><input type="checkbox" name="native_off" value="1" <?php checked( $settings['native_off'] ); ?>> <?php esc_html_e( 'WordPress takes no comments itself (the service does)', 'comments-service' ); ?></label>
			<?php submit_button( __( 'Save', 'comments-service' ), 'secondary', 'cmsvc-native', false ); ?></p>
		</form>
	</div>
	<?php
}
