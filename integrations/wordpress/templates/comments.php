<?php
/**
 * The comments of a post or page, from the service, in place of the theme's comments.php.
 *
 * Include mode: the thread and form are fetched on the server and printed (readers without
 * JavaScript read and comment; embed.js enhances the form when it runs). Script mode: embed.js
 * fetches them, with a link for readers without JavaScript. Iframe mode: the service's page in a
 * frame. The post's title, address and publication date go with it.
 *
 * @package comments-service
 * @license GPL-2.0-or-later
 */

defined( 'ABSPATH' ) || exit;

$cmsvc_post     = get_post();
$cmsvc_settings = cmsvc_settings();
$cmsvc_facts    = cmsvc_post_facts( $cmsvc_post );
$cmsvc_loader   = cmsvc_url( '/embed.js' );
$cmsvc_page_url = cmsvc_thread_url( $cmsvc_facts, true );
cmsvc_sync_closed( $cmsvc_post ); // A change of the comment setting the service missed.
?>
<?php if ( 'iframe' === $cmsvc_settings['mode'] ) : ?>
<div id="comments" class="comments-area cmsvc-comments">
	<?php // No data-site here: embed.js would fill the box with the thread; beside a frame it only sizes the frame. ?>
	<iframe src="<?php echo esc_url( $cmsvc_page_url ); ?>" title="<?php esc_attr_e( 'Comments', 'comments-service' ); ?>" style="width: 100%; min-height: 30rem; border: 0"></iframe>
<?php else : ?>
<div id="comments" class="comments-area cmsvc-comments"
	data-site="<?php echo esc_attr( $cmsvc_settings['site'] ); ?>"
	data-post="<?php echo esc_attr( $cmsvc_facts['key'] ); ?>"
	data-title="<?php echo esc_attr( $cmsvc_facts['title'] ); ?>"
	data-url="<?php echo esc_url( $cmsvc_facts['url'] ); ?>"
	data-published="<?php echo esc_attr( $cmsvc_facts['published'] ); ?>"
	data-lang="<?php echo esc_attr( cmsvc_language() ); ?>">
	<?php
	if ( 'script' === $cmsvc_settings['mode'] ) :
		?>
	<p><a href="<?php echo esc_url( $cmsvc_page_url ); ?>"><?php esc_html_e( 'Read and leave comments', 'comments-service' ); ?></a></p>
		<?php
	else :
		$cmsvc_fragment = cmsvc_fragment( $cmsvc_facts );
		if ( null === $cmsvc_fragment ) :
			?>
	<p class="cmsvc-unavailable"><?php esc_html_e( 'Comments are unavailable at the moment. Please try again later.', 'comments-service' ); ?></p>
			<?php
		else :
			echo $cmsvc_fragment; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- checked by wp_kses in cmsvc_fragment().
		endif;
	endif;
	?>
<?php endif; ?>
</div>
<script src="<?php echo esc_url( $cmsvc_loader ); ?>" async></script><?php // phpcs:ignore WordPress.WP.EnqueuedResources.NonEnqueuedScript -- async, and only where the thread is. ?>

